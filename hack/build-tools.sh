#!/usr/bin/env bash
# build-tools.sh builds, once, the real programs the tests run against and
# caches them outside the checkout so every clone on this machine reuses them:
#   kube-apiserver, etcd   (envtest; from k8s.io/kubernetes and go.etcd.io/etcd)
#   sops                   (proves others can decrypt what certsync wrote)
#   actionlint             (lints .github/workflows)
#   kubectl                (bench only: the yardstick BenchmarkRestore10k
#                           compares a restore with; from k8s.io/kubernetes)
# Each binary is rebuilt only when the pinned version changes.
# "build-tools.sh demo" builds what `make demo` runs (no actionlint);
# "build-tools.sh bench" builds everything plus kubectl (`make bench`).
set -euo pipefail
want=${1:-all}

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CERTSYNC_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/certsync/tools}
mkdir -p "$cache"

SOPS_VERSION=v3.13.3
ACTIONLINT_VERSION=v1.7.12
KUBE_VERSION=$(awk '/^require k8s.io\/kubernetes/ {print $3}' "$root/tools/kube-apiserver/go.mod")
ETCD_VERSION=$(awk '/^require go.etcd.io\/etcd\/server\/v3/ {print $3}' "$root/tools/etcd/go.mod")

# fresh NAME VERSION: true when $cache/NAME was built from VERSION.
fresh() { [ -x "$cache/$1" ] && [ "$(cat "$cache/$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$cache/$1.version"; }
step() { printf '[tools] %s\n' "$*" >&2; }

if ! fresh etcd "$ETCD_VERSION"; then
  step "building etcd $ETCD_VERSION (seconds)"
  (cd "$root/tools/etcd" && go build -trimpath -o "$cache/etcd" .)
  stamp etcd "$ETCD_VERSION"
fi

if ! fresh kube-apiserver "$KUBE_VERSION"; then
  step "building kube-apiserver $KUBE_VERSION: about 5 minutes on 2 cores, once per machine"
  start=$(date +%s)
  (cd "$root/tools/kube-apiserver" && go build -trimpath -o "$cache/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver) &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && step "  kube-apiserver still building ($(( $(date +%s) - start ))s)"
  done
  wait "$pid"
  stamp kube-apiserver "$KUBE_VERSION"
  step "kube-apiserver built in $(( $(date +%s) - start ))s"
fi

if ! fresh sops "$SOPS_VERSION"; then
  step "building sops $SOPS_VERSION (about a minute)"
  GOBIN="$cache" go install -trimpath "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION"
  stamp sops "$SOPS_VERSION"
fi

if [ "$want" != demo ] && ! fresh actionlint "$ACTIONLINT_VERSION"; then
  step "building actionlint $ACTIONLINT_VERSION"
  GOBIN="$cache" go install -trimpath "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  stamp actionlint "$ACTIONLINT_VERSION"
fi

# kubectl comes from the same tools module and release as kube-apiserver
# (its go.mod requires what k8s.io/kubernetes/cmd/kubectl needs too).
if [ "$want" = bench ] && ! fresh kubectl "$KUBE_VERSION"; then
  step "building kubectl $KUBE_VERSION: a few minutes on 2 cores, once per machine"
  start=$(date +%s)
  (cd "$root/tools/kube-apiserver" && go build -trimpath \
    -ldflags "-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION" \
    -o "$cache/kubectl" k8s.io/kubernetes/cmd/kubectl)
  stamp kubectl "$KUBE_VERSION"
  step "kubectl built in $(( $(date +%s) - start ))s"
fi

echo "$cache"
