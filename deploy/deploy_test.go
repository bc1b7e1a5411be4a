package deploy

// The chart and the kustomize base as manifests: lint, what every rendering
// must hold (pod security, RBAC exactly as needed, settings that point at
// mounted files), a real API server's verdict on each object, and the chart
// and the base rendering the same objects.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/certsync/certsync/internal/testbed"
)

// TestHelmLint runs `helm lint --strict` with each rendering's values.
func TestHelmLint(t *testing.T) {
	for _, r := range renderings() {
		if r.values == nil {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "values.json")
			b, _ := json.Marshal(r.values)
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			out := runTool(t, "helm", "lint", "--strict", "--kube-version", kubeVersion, chartDir, "-f", file)
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

// TestChartRefusesMistakes: values that would install a broken agent fail
// `helm install` with a message saying what to set.
func TestChartRefusesMistakes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"no repository", map[string]any{}, "repository.url is required"},
		{"misspelt key", chartValues("repositry", map[string]any{"url": "x"}), "additional properties 'repositry' not allowed"},
		{"unknown git auth", chartValues("git.auth", "token"), "value must be one of 'https', 'ssh', 'none'"},
		{"unknown role", chartValues("role", "leader"), "value must be one of 'issuer', 'applier', 'both'"},
		{"two replicas without a Lease", chartValues("leaderElection.enabled", false), "replicas > 1 needs leaderElection.enabled"},
		{"interval without a unit", chartValues("interval", "60"), "/interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "values.json")
			b, _ := json.Marshal(tc.values)
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(testbed.Tool(t, "helm"), "template", "certsync", chartDir, "--kube-version", kubeVersion, "-f", file)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("helm template accepted the values:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("helm template failed without saying %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestManifests checks what every rendering must hold, before any API
// server sees it.
func TestManifests(t *testing.T) {
	for _, r := range renderings() {
		t.Run(r.name, func(t *testing.T) {
			m := newManifest(t, r.render(t))
			checkPodSecurity(t, m)
			checkSettings(t, m)
			checkRBAC(t, m)
			checkSelectors(t, m)
		})
	}
}

// checkPodSecurity: non-root, no privilege escalation, no capabilities, a
// read-only root filesystem and the runtime's seccomp profile.
func checkPodSecurity(t *testing.T, m *manifest) {
	t.Helper()
	pod := m.deployment.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("the Pod does not require runAsNonRoot")
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		t.Error("the Pod runs as uid 0")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("the Pod's seccomp profile is not RuntimeDefault")
	}
	sc := m.container.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("the container has no securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("the container allows privilege escalation")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("the container's root filesystem is writable")
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
		t.Error("the container does not drop all capabilities")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("the container is privileged")
	}
	if p := m.container.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("liveness probe %+v: want GET /healthz on port http", p)
	}
	if p := m.container.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("readiness probe %+v: want GET /readyz on port http", p)
	}
}

// checkSettings: what certsync writes lies on an emptyDir, the files it
// reads are keys of mounted Secrets, the ports it listens on are the
// container's, and the Lease is looked for in the Pod's own namespace.
func checkSettings(t *testing.T, m *manifest) {
	t.Helper()
	if len(m.container.Args) == 0 || m.container.Args[0] != "run" {
		t.Errorf("args %q: want the agent, `run`", m.container.Args)
	}
	for _, dir := range []string{m.settings["CERTSYNC_CACHE_DIR"] + ".state/x", "/tmp/x"} {
		if _, v, ok := m.mountOf(dir); !ok || v.EmptyDir == nil {
			t.Errorf("%s is not on an emptyDir: certsync writes there and the root filesystem is read-only", filepath.Dir(dir))
		}
	}
	if m.settings["CERTSYNC_CACHE_DIR"] == "" {
		t.Error("CERTSYNC_CACHE_DIR is not set: the clone would go to $HOME/.cache on the read-only root filesystem")
	}
	files := 0
	for name, path := range m.settings {
		if !strings.HasPrefix(name, "CERTSYNC_") || !strings.HasSuffix(name, "_FILE") || path == "" {
			continue
		}
		files++
		mount, vol, ok := m.mountOf(path)
		if !ok || vol.Secret == nil {
			t.Errorf("%s=%s is not in a mounted Secret", name, path)
			continue
		}
		rel := strings.TrimPrefix(path, strings.TrimSuffix(mount.MountPath, "/")+"/")
		if len(vol.Secret.Items) > 0 && !slices.ContainsFunc(vol.Secret.Items, func(i corev1.KeyToPath) bool { return i.Path == rel }) {
			t.Errorf("%s=%s: Secret %s mounts no item at %s", name, path, vol.Secret.SecretName, rel)
		}
	}
	if files == 0 {
		t.Error("no CERTSYNC_*_FILE setting: the age key at least comes from a file")
	}
	if got, want := addrPort(t, m.settings["CERTSYNC_LISTEN_ADDR"]), strconv.Itoa(int(m.port("http"))); got != want {
		t.Errorf("CERTSYNC_LISTEN_ADDR port %s, container port http %s", got, want)
	}
	if got, want := addrPort(t, m.settings["CERTSYNC_HTTP01_ADDR"]), strconv.Itoa(int(m.port("http01"))); got != want {
		t.Errorf("CERTSYNC_HTTP01_ADDR port %s, container port http01 %s", got, want)
	}
	if m.settings["CERTSYNC_LEADER_ELECT"] == "true" {
		for name, field := range map[string]string{"CERTSYNC_LEADER_ELECT_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"} {
			e, ok := m.env(name)
			if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != field {
				t.Errorf("%s is not taken from the Pod's %s", name, field)
			}
		}
	} else if r := m.deployment.Spec.Replicas; r == nil || *r > 1 {
		t.Error("several replicas without leader election")
	}
}

// checkRBAC: the ServiceAccount may do exactly what certsync does, in
// exactly the namespaces certsync is told about; every binding names a
// rendered ServiceAccount.
func checkRBAC(t *testing.T, m *manifest) {
	t.Helper()
	got, want := sortedGrants(m.grants(t)), sortedGrants(m.wantGrants())
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("the ServiceAccount may %s: certsync never does (least privilege)", g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("the ServiceAccount may not %s: certsync needs it", w)
		}
	}
	for _, o := range ofKind(m.objs, "RoleBinding", "ClusterRoleBinding") {
		subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		for _, s := range subjects {
			s := s.(map[string]any)
			if s["kind"] == "ServiceAccount" {
				m.find(t, "ServiceAccount", fmt.Sprint(s["namespace"]), fmt.Sprint(s["name"]))
			}
		}
	}
}

// checkSelectors: the Deployment, the Service, the ServiceMonitor and the
// NetworkPolicy all find the Pods, by ports that exist.
func checkSelectors(t *testing.T, m *manifest) {
	t.Helper()
	podLabels := m.deployment.Spec.Template.Labels
	if !subset(m.deployment.Spec.Selector.MatchLabels, podLabels) {
		t.Error("the Deployment's selector does not match its Pods")
	}
	var svc corev1.Service
	convert(t, only(t, m.objs, "Service"), &svc)
	if !subset(svc.Spec.Selector, podLabels) {
		t.Error("the Service does not select the Pods")
	}
	for _, p := range svc.Spec.Ports {
		if m.port(p.TargetPort.String()) == 0 {
			t.Errorf("Service port %s targets %s, which the container does not have", p.Name, p.TargetPort.String())
		}
	}
	for _, sm := range ofKind(m.objs, "ServiceMonitor") {
		sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		if !subset(sel, svc.Labels) {
			t.Error("the ServiceMonitor does not select the Service")
		}
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		for _, e := range endpoints {
			port := e.(map[string]any)["port"]
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == port }) {
				t.Errorf("the ServiceMonitor scrapes port %v, which the Service does not have", port)
			}
		}
	}
	for _, np := range ofKind(m.objs, "NetworkPolicy") {
		sel, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels")
		if !subset(sel, podLabels) {
			t.Error("the NetworkPolicy does not select the Pods")
		}
	}
}

// TestManifestsApplyToAPIServer applies every object of every rendering to
// a real API server with server-side apply, dry-run and strict field
// validation (an unknown or misplaced field is an error, not dropped), in
// namespaces that enforce the "restricted" Pod Security Standard, and
// creates (dry-run) the Pod the Deployment would make, which that
// admission checks. Any warning fails too.
func TestManifestsApplyToAPIServer(t *testing.T) {
	api := sharedAPI(t)
	for _, ns := range []string{"certsync", "shop", "api", "platform"} {
		ensureNamespace(t, ns, restricted)
	}
	installServiceMonitorCRD(t)
	for _, r := range renderings() {
		t.Run(r.name, func(t *testing.T) {
			objs := r.render(t)
			warnings := &warningLog{}
			cfg := rest.CopyConfig(api.Config)
			cfg.WarningHandler = warnings
			c := newApplier(t, cfg)
			for _, o := range objs {
				if err := c.apply(o, true); err != nil {
					t.Errorf("%s: %v", key(o), err)
				}
			}
			d := only(t, objs, "Deployment")
			pod := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "Pod",
				"metadata": map[string]any{"name": d.GetName() + "-pod", "namespace": d.GetNamespace()},
			}}
			labels, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "metadata", "labels")
			spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
			_ = unstructured.SetNestedMap(pod.Object, labels, "metadata", "labels")
			_ = unstructured.SetNestedMap(pod.Object, spec, "spec")
			if err := c.apply(pod, true); err != nil {
				t.Errorf("the Deployment's Pod, in a namespace enforcing the restricted Pod Security Standard: %v", err)
			}
			for _, w := range warnings.all() {
				t.Errorf("warning from the API server: %s", w)
			}
		})
	}
}

// restricted labels a namespace to enforce (and warn about) the
// "restricted" Pod Security Standard.
var restricted = map[string]string{
	"pod-security.kubernetes.io/enforce": "restricted",
	"pod-security.kubernetes.io/warn":    "restricted",
}

// ensureNamespace creates a namespace with labels, once per API server.
func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	_, err := adminClient(t).CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

var crdOnce sync.Once

// installServiceMonitorCRD creates the minimal ServiceMonitor CRD of
// testdata and waits until the API server serves the kind.
func installServiceMonitorCRD(t *testing.T) {
	t.Helper()
	crdOnce.Do(func() {
		b, err := os.ReadFile("testdata/servicemonitor-crd.yaml")
		if err != nil {
			t.Fatal(err)
		}
		crd := parseObjects(t, b)[0]
		if err := newApplier(t, sharedAPI(t).Config).apply(crd, false); err != nil {
			t.Fatalf("install the ServiceMonitor CRD: %v", err)
		}
	})
	c := newApplier(t, sharedAPI(t).Config)
	gk := schema.GroupKind{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if _, err := c.mapper.RESTMapping(gk, "v1"); err == nil {
			return
		}
		c.mapper.Reset()
		select {
		case <-ctx.Done():
			t.Fatal("the API server never served ServiceMonitor after its CRD was created")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// applier server-side applies unstructured objects of any kind.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(t *testing.T, cfg *rest.Config) *applier {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

// apply server-side applies o (dryRun: validated and admitted, not
// stored), rejecting unknown fields.
func (a *applier) apply(o *unstructured.Unstructured, dryRun bool) error {
	gvk := o.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("the API server does not serve %s: %w", gvk, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return fmt.Errorf("namespaced %s has no namespace", gvk.Kind)
		}
		ri = a.dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
	}
	data, err := json.Marshal(o.Object)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: "deploy-test", FieldValidation: "Strict", Force: new(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(context.Background(), o.GetName(), types.ApplyPatchType, data, opts)
	return err
}

// warningLog collects the API server's warnings (deprecated APIs, Pod
// Security violations in warn mode, unknown fields).
type warningLog struct {
	mu   sync.Mutex
	list []string
}

func (w *warningLog) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warningLog) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// TestHelmMatchesKustomize: the chart and the kustomize base (with the
// component matching each option) render the same objects, field for field,
// apart from what only one tool adds: helm's own labels and the config
// checksum, kustomize's hash suffix on the ConfigMap's name.
func TestHelmMatchesKustomize(t *testing.T) {
	for _, tc := range []struct {
		name      string
		values    map[string]any
		kustomize string
	}{
		{"defaults", chartValues(), "testdata/kustomize/default"},
		{"cluster-wide", chartValues("rbac.clusterWide", true), "testdata/kustomize/cluster-wide"},
		{"service-monitor", chartValues("serviceMonitor.enabled", true), "testdata/kustomize/service-monitor"},
		{"network-policy", chartValues("networkPolicy.enabled", true), "testdata/kustomize/network-policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := comparable(t, helmTemplate(t, "certsync", "certsync", tc.values))
			k := comparable(t, kustomizeBuild(t, tc.kustomize))
			for _, name := range sortedKeys(h, k) {
				switch {
				case k[name] == nil:
					t.Errorf("%s: rendered by helm only", name)
				case h[name] == nil:
					t.Errorf("%s: rendered by kustomize only", name)
				default:
					if d := diff.Diff(h[name], k[name]); d != "" {
						t.Errorf("%s differs (-helm +kustomize):\n%s", name, d)
					}
				}
			}
		})
	}
}

// hashSuffix is what kustomize's configMapGenerator appends to a name.
var hashSuffix = regexp.MustCompile(`^(certsync-config)-[a-z0-9]{10}$`)

// comparable strips what only one tool adds and returns the objects by key.
func comparable(t *testing.T, objs []*unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, o := range objs {
		o = o.DeepCopy()
		strip := func(fields ...string) {
			labels, _, _ := unstructured.NestedStringMap(o.Object, fields...)
			delete(labels, "helm.sh/chart")
			delete(labels, "app.kubernetes.io/managed-by")
			if len(labels) > 0 {
				_ = unstructured.SetNestedStringMap(o.Object, labels, fields...)
			}
		}
		strip("metadata", "labels")
		if o.GetKind() == "Deployment" {
			strip("spec", "template", "metadata", "labels")
			unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations", "checksum/config")
			if a, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "metadata", "annotations"); len(a) == 0 {
				unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations")
			}
		}
		// Round-trip through YAML so both tools' numbers and strings
		// compare alike, then undo the hash suffix wherever it appears.
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m = unhash(m).(map[string]any)
		obj := &unstructured.Unstructured{Object: m}
		out[key(obj)] = m
	}
	return out
}

func unhash(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = unhash(e)
		}
	case []any:
		for i, e := range v {
			v[i] = unhash(e)
		}
	case string:
		return hashSuffix.ReplaceAllString(v, "$1")
	}
	return v
}

func sortedKeys(maps ...map[string]map[string]any) []string {
	var keys []string
	for _, m := range maps {
		for k := range m {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// TestImageMatchesChart: a default install runs the image of the chart's
// appVersion, and the kustomize base pins the same one.
func TestImageMatchesChart(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	want := "ghcr.io/certsync/certsync:" + chart.AppVersion
	for name, objs := range map[string][]*unstructured.Unstructured{
		"helm":      helmTemplate(t, "certsync", "certsync", chartValues()),
		"kustomize": kustomizeBuild(t, "kustomize"),
	} {
		m := newManifest(t, objs)
		if m.container.Image != want {
			t.Errorf("%s runs image %s, want %s (Chart.yaml appVersion)", name, m.container.Image, want)
		}
	}
}

// TestSettingsAreFlags: every CERTSYNC_* variable a rendering sets, and
// every flag it passes, is a flag of `certsync run`. certsync ignores an
// environment variable that names no flag, so a typo or a renamed flag
// would otherwise pass silently.
func TestSettingsAreFlags(t *testing.T) {
	out, err := exec.Command(certsyncBinary(t), "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("certsync run --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--?([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["repo"] || !flags["leader-elect"] {
		t.Fatalf("read no flags from `certsync run --help`:\n%s", out)
	}
	for _, r := range renderings() {
		t.Run(r.name, func(t *testing.T) {
			m := newManifest(t, r.render(t))
			names := map[string]bool{}
			for name := range m.settings {
				names[name] = true
			}
			for _, e := range m.container.Env {
				names[e.Name] = true
			}
			for name := range names {
				rest, ok := strings.CutPrefix(name, "CERTSYNC_")
				if !ok {
					continue
				}
				if flag := strings.ToLower(strings.ReplaceAll(rest, "_", "-")); !flags[flag] {
					t.Errorf("%s sets --%s, which `certsync run` does not have", name, flag)
				}
			}
			for _, a := range m.container.Args[1:] {
				if flag, ok := strings.CutPrefix(a, "--"); ok && !flags[strings.SplitN(flag, "=", 2)[0]] {
					t.Errorf("argument %s is not a flag of `certsync run`", a)
				}
			}
		})
	}
}
