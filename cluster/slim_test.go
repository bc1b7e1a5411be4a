package cluster

import (
	"strings"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSlim: the watch keeps what Observe reports (name, namespace,
// resourceVersion, labels, certsync's annotations) and nothing else, and
// two Secrets' repeated strings share one copy.
func TestSlim(t *testing.T) {
	secret := func(name, rv string) *metav1.PartialObjectMetadata {
		// Built from fresh bytes each time, as decoding makes them.
		fresh := func(s string) string { return strings.Clone(s) }
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: fresh("team-a"), ResourceVersion: rv,
			Labels:        map[string]string{fresh(ManagedByLabel): fresh(ManagedByValue), fresh(InstanceLabel): fresh("0123abcd")},
			Annotations:   map[string]string{fresh(AppliedHashAnnotation): "hash-of-" + name, fresh(OwnerAnnotation): fresh("https://git.example/certs#main cluster prod"), "kubectl.kubernetes.io/last-applied-configuration": "{…}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: FieldManager}},
		}}
	}
	a, err := slim(secret("a", "1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := slim(secret("b", "2"))
	if err != nil {
		t.Fatal(err)
	}
	ma, mb := a.(*metav1.PartialObjectMetadata), b.(*metav1.PartialObjectMetadata)
	if ma.Name != "a" || ma.ResourceVersion != "1" || ma.Namespace != "team-a" || ma.Annotations[AppliedHashAnnotation] != "hash-of-a" || ma.Labels[InstanceLabel] != "0123abcd" {
		t.Errorf("slim lost what Observe reports: %+v", ma.ObjectMeta)
	}
	if len(ma.ManagedFields) != 0 || len(ma.Annotations) != 2 {
		t.Errorf("slim kept managedFields %v or foreign annotations %v", ma.ManagedFields, ma.Annotations)
	}
	same := func(what, x, y string) {
		if unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s %q: two copies, want one shared", what, x)
		}
	}
	same("namespace", ma.Namespace, mb.Namespace)
	same("owner", ma.Annotations[OwnerAnnotation], mb.Annotations[OwnerAnnotation])
	same("instance", ma.Labels[InstanceLabel], mb.Labels[InstanceLabel])
	for k := range ma.Annotations {
		for k2 := range mb.Annotations {
			if k == k2 {
				same("annotation key", k, k2)
			}
		}
	}
}
