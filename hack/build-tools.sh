#!/usr/bin/env bash
# build-tools.sh builds, once, the real programs the tests run against and
# caches them outside the checkout so every clone on this machine reuses them:
#   kube-apiserver, etcd   (envtest; from k8s.io/kubernetes and go.etcd.io/etcd)
#   sops                   (proves others can decrypt what certsync wrote)
#   actionlint             (lints .github/workflows)
#   helm, kustomize        (deploy/: the chart and the kustomize base are
#                           rendered and applied to the test API server)
#   promtool               (deploy/monitoring: the alert rules are checked
#                           and unit-tested)
#   kubectl                (bench only: the yardstick BenchmarkRestore10k
#                           compares a restore with; from k8s.io/kubernetes)
# Each binary is rebuilt only when the pinned version changes.
# "build-tools.sh demo" builds what `make demo` runs (no linters, helm,
# kustomize or promtool);
# "build-tools.sh bench" builds everything plus kubectl (`make bench`).
set -euo pipefail
want=${1:-all}

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CERTSYNC_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/certsync/tools}
mkdir -p "$cache"

SOPS_VERSION=v3.13.3
ACTIONLINT_VERSION=v1.7.12
HELM_VERSION=v3.22.0
# kustomize v5.8.3 needs Go 1.27; v5.8.2 builds with the toolchain here.
KUSTOMIZE_VERSION=v5.8.2
# Prometheus v3.x is published to the module proxy as v0.3xx.
PROMTOOL_VERSION=v0.316.0
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

# go_install NAME MODULE VERSION: a `go install` into the cache, once.
go_install() {
  if ! fresh "$1" "$3"; then
    step "building $1 $3 (a minute or two, once per machine)"
    GOBIN="$cache" go install -trimpath "$2@$3"
    stamp "$1" "$3"
  fi
}

if [ "$want" != demo ]; then
  go_install actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
  go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
  go_install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
  go_install promtool github.com/prometheus/prometheus/cmd/promtool "$PROMTOOL_VERSION"
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
