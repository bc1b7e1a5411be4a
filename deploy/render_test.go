package deploy

// Rendering: what `helm template` and `kustomize build` make of the chart,
// the base and the overlays, parsed into objects. Both tools are the real
// programs built by hack/build-tools.sh.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/certsync/certsync/internal/testbed"
)

const (
	chartDir = "helm/certsync"
	// kubeVersion is the cluster version helm renders for. helm built from
	// source assumes 1.20 when it has no cluster to ask, which the chart's
	// kubeVersion (>=1.25) refuses; this is the test API server's.
	kubeVersion = "1.37.2"
	// exampleRepo is the repository URL of the renderings that are not
	// run against a Git server.
	exampleRepo = "https://git.example.com/platform/certs.git"
)

// rendering is one way of installing certsync: the chart with some values
// (release "certsync" in namespace "certsync"), or a kustomization.
type rendering struct {
	name      string
	values    map[string]any // helm values; nil for kustomize
	kustomize string         // kustomization directory, relative to deploy/
}

func (r rendering) render(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	if r.kustomize != "" {
		return kustomizeBuild(t, r.kustomize)
	}
	return helmTemplate(t, "certsync", "certsync", r.values)
}

// renderings are the installs every test of the manifests covers: the
// chart's defaults and each option that changes the objects, the kustomize
// base, its components and the overlays deploy/README.md shows.
func renderings() []rendering {
	return []rendering{
		{name: "helm/defaults", values: chartValues()},
		{name: "helm/ssh", values: chartValues("git.auth", "ssh", "repository.url", "ssh://git@git.example.com/platform/certs.git")},
		{name: "helm/cluster-wide", values: chartValues("rbac.clusterWide", true)},
		{name: "helm/issuer", values: chartValues("role", "issuer")},
		{name: "helm/public-repository", values: chartValues("git.auth", "none")},
		{name: "helm/service-monitor", values: chartValues("serviceMonitor.enabled", true)},
		{name: "helm/network-policy", values: chartValues("networkPolicy.enabled", true)},
		{name: "helm/everything", values: chartValues(
			"git.auth", "ssh", "repository.url", "ssh://git@git.example.com/platform/certs.git",
			"repository.branch", "certs", "cluster", "prod-eu", "role", "applier", "interval", "5m",
			"rbac.secretNamespaces", []any{"shop", "api"},
			"webhook.secretName", "certsync-webhook",
			"serviceMonitor.enabled", true, "serviceMonitor.labels", map[string]any{"release": "kube-prometheus-stack"},
			"networkPolicy.enabled", true,
			"networkPolicy.git.to", []any{map[string]any{"ipBlock": map[string]any{"cidr": "192.0.2.10/32"}}},
			"networkPolicy.ingressFrom", []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "ingress-nginx"}}}},
			"serviceAccount.annotations", map[string]any{"example.com/team": "platform"},
			"image.digest", "sha256:"+strings.Repeat("ab", 32),
			"extraArgs", []any{"--dns01-recursive-nameservers", "192.0.2.53:53"},
			"extraEnv", []any{map[string]any{"name": "CERTSYNC_CONCURRENCY", "value": "4"}},
			"podAnnotations", map[string]any{"example.com/scrape": "true"},
			"nodeSelector", map[string]any{"kubernetes.io/os": "linux"},
		)},
		{name: "kustomize/base", kustomize: "kustomize"},
		{name: "kustomize/default", kustomize: "testdata/kustomize/default"},
		{name: "kustomize/cluster-wide", kustomize: "testdata/kustomize/cluster-wide"},
		{name: "kustomize/service-monitor", kustomize: "testdata/kustomize/service-monitor"},
		{name: "kustomize/network-policy", kustomize: "testdata/kustomize/network-policy"},
		{name: "kustomize/example-shop", kustomize: "testdata/kustomize/example-shop"},
		{name: "kustomize/example-platform", kustomize: "testdata/kustomize/example-platform"},
	}
}

// chartValues is the chart's one required value, repository.url, plus the
// given dotted keys and values ("rbac.clusterWide", true, ...).
func chartValues(kv ...any) map[string]any {
	v := map[string]any{"repository": map[string]any{"url": exampleRepo}}
	for i := 0; i+1 < len(kv); i += 2 {
		setPath(v, kv[i].(string), kv[i+1])
	}
	return v
}

func setPath(m map[string]any, dotted string, val any) {
	keys := strings.Split(dotted, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = val
}

// helmTemplate renders the chart as `helm install RELEASE -n NAMESPACE`
// would, with values written to a file as a user's -f values.yaml.
func helmTemplate(t *testing.T, release, namespace string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.json")
	b, err := json.Marshal(values)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatalf("values: %v", err)
	}
	out := runTool(t, "helm", "template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion, "-f", file)
	return parseObjects(t, out)
}

func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return parseObjects(t, runTool(t, "kustomize", "build", dir))
}

// runTool runs a program built by hack/build-tools.sh and returns its
// standard output. helm gets homes of its own so nothing of the user's
// (repositories, plugins, caches) takes part.
func runTool(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testbed.Tool(t, name), args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HOME="+home, "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.Bytes()
}

// parseObjects splits a multi-document YAML stream into objects, skipping
// empty documents (a template whose condition is false).
func parseObjects(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("read the rendered YAML: %v", err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("parse a rendered document: %v\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// key names an object for messages and comparisons: Kind namespace/name.
func key(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return o.GetKind() + " " + ns + "/" + o.GetName()
	}
	return o.GetKind() + " " + o.GetName()
}

// only returns the one object of a kind, failing when there is not exactly one.
func only(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := ofKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, rendered %d", kind, len(found))
	}
	return found[0]
}

func ofKind(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		for _, k := range kinds {
			if o.GetKind() == k {
				out = append(out, o)
			}
		}
	}
	return out
}
