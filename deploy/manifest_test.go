package deploy

// A typed view of one rendering: the Deployment, its settings and the RBAC
// its ServiceAccount ends up with.

import (
	"net"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// manifest is one rendering, with the objects the checks look into typed.
type manifest struct {
	objs       []*unstructured.Unstructured
	deployment appsv1.Deployment
	container  corev1.Container
	// settings are the container's environment as the rendering sets it:
	// the ConfigMap of envFrom, then literal env values (which win).
	settings map[string]string
}

func newManifest(t *testing.T, objs []*unstructured.Unstructured) *manifest {
	t.Helper()
	m := &manifest{objs: objs, settings: map[string]string{}}
	convert(t, only(t, objs, "Deployment"), &m.deployment)
	if n := len(m.deployment.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", n)
	}
	m.container = m.deployment.Spec.Template.Spec.Containers[0]
	for _, from := range m.container.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Fatalf("envFrom %+v: only ConfigMaps are expected", from)
		}
		var cm corev1.ConfigMap
		convert(t, m.find(t, "ConfigMap", m.deployment.Namespace, from.ConfigMapRef.Name), &cm)
		for k, v := range cm.Data {
			m.settings[k] = v
		}
	}
	for _, e := range m.container.Env {
		if e.ValueFrom == nil {
			m.settings[e.Name] = e.Value
		}
	}
	return m
}

func convert(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatalf("%s: %v", key(o), err)
	}
}

// find returns the object of a kind, namespace and name.
func (m *manifest) find(t *testing.T, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range m.objs {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("%s %s/%s is referenced but not rendered", kind, namespace, name)
	return nil
}

// env returns the container's env entry of a name.
func (m *manifest) env(name string) (corev1.EnvVar, bool) {
	for _, e := range m.container.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// mountOf returns the volume mounted at the deepest mount path holding p.
func (m *manifest) mountOf(p string) (corev1.VolumeMount, corev1.Volume, bool) {
	var best corev1.VolumeMount
	for _, vm := range m.container.VolumeMounts {
		if strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/") && len(vm.MountPath) > len(best.MountPath) {
			best = vm
		}
	}
	for _, v := range m.deployment.Spec.Template.Spec.Volumes {
		if best.Name != "" && v.Name == best.Name {
			return best, v, true
		}
	}
	return best, corev1.Volume{}, false
}

func (m *manifest) port(name string) int32 {
	for _, p := range m.container.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// secretNamespaces are the namespaces certsync is told to work in
// (CERTSYNC_NAMESPACES), or ["*"] when it is not told (all of them).
func (m *manifest) secretNamespaces() []string {
	v := m.settings["CERTSYNC_NAMESPACES"]
	if v == "" {
		return []string{"*"}
	}
	out := strings.Split(v, ",")
	sort.Strings(out)
	return out
}

// grant is one thing a ServiceAccount may do: a verb on a resource, in a
// namespace ("*": every namespace), on one object (name) or any ("").
type grant struct {
	namespace, group, resource, name, verb string
}

func (g grant) String() string {
	s := g.verb + " " + g.resource
	if g.group != "" {
		s += "." + g.group
	}
	if g.name != "" {
		s += "/" + g.name
	}
	return s + " in " + g.namespace
}

// grants are the permissions the rendering's RBAC gives the ServiceAccount
// the Deployment runs as, expanded rule by rule through the bindings that
// name it. A binding whose role is not rendered grants nothing.
func (m *manifest) grants(t *testing.T) []grant {
	t.Helper()
	sa := m.deployment.Spec.Template.Spec.ServiceAccountName
	ns := m.deployment.Namespace
	boundToSA := func(subjects []rbacv1.Subject) bool {
		for _, s := range subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == sa && s.Namespace == ns {
				return true
			}
		}
		return false
	}
	var out []grant
	expand := func(namespace string, rules []rbacv1.PolicyRule) {
		for _, r := range rules {
			names := r.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						for _, n := range names {
							out = append(out, grant{namespace, g, res, n, v})
						}
					}
				}
			}
		}
	}
	rules := func(kind, namespace, name string) []rbacv1.PolicyRule {
		for _, o := range m.objs {
			if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
				var r rbacv1.ClusterRole // Role and ClusterRole share the rules field
				convert(t, o, &r)
				return r.Rules
			}
		}
		return nil
	}
	for _, o := range ofKind(m.objs, "RoleBinding") {
		var b rbacv1.RoleBinding
		convert(t, o, &b)
		if boundToSA(b.Subjects) {
			refNS := b.Namespace
			if b.RoleRef.Kind == "ClusterRole" {
				refNS = ""
			}
			expand(b.Namespace, rules(b.RoleRef.Kind, refNS, b.RoleRef.Name))
		}
	}
	for _, o := range ofKind(m.objs, "ClusterRoleBinding") {
		var b rbacv1.ClusterRoleBinding
		convert(t, o, &b)
		if boundToSA(b.Subjects) {
			expand("*", rules(b.RoleRef.Kind, "", b.RoleRef.Name))
		}
	}
	return out
}

// wantGrants is exactly what certsync needs (cluster/cluster.go, leader/):
// Secrets and Events where it applies Secrets (an applier, or both), and
// its Lease at home.
func (m *manifest) wantGrants() []grant {
	var out []grant
	for _, ns := range m.secretNamespaces() {
		if m.settings["CERTSYNC_ROLE"] == "issuer" {
			break // an issuer never touches a cluster's Secrets
		}
		for _, v := range []string{"get", "list", "watch", "create", "patch", "delete"} {
			out = append(out, grant{ns, "", "secrets", "", v})
		}
		out = append(out, grant{ns, "", "events", "", "create"})
	}
	home := m.deployment.Namespace
	out = append(out,
		grant{home, "coordination.k8s.io", "leases", "", "create"},
		grant{home, "coordination.k8s.io", "leases", "certsync", "get"},
		grant{home, "coordination.k8s.io", "leases", "certsync", "update"})
	return out
}

func sortedGrants(gs []grant) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.String()
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// addrPort is the port of a listen address such as ":8080".
func addrPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}

// subset reports whether every label of sel is in labels with its value.
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false // an empty selector selects everything: never what is meant
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}
