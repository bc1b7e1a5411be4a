package reconcile

import (
	"errors"
	"strings"
	"testing"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/settings"
)

// deliver plans the set's own Certificates when every one can be
// delivered (no copy of 10,000), and a copy without the ones it leaves
// out otherwise; the set itself is never changed.
func TestDeliverLeavesOutOnlyWhatCannotBeDelivered(t *testing.T) {
	conf, err := settings.Parse([]byte("apiVersion: certsync.io/v1alpha1\nkind: Settings\nclusters:\n- name: a\n- name: b\n"))
	if err != nil {
		t.Fatal(err)
	}
	cert := func(name, cluster string) declared.Certificate {
		return declared.Certificate{Namespace: "ns", Name: name, SecretName: name + "-tls",
			Source: declared.Source{File: name + ".yaml", Line: 1, Column: 1}, Delivery: declared.Delivery{Clusters: []string{cluster}}}
	}
	for _, tt := range []struct {
		name    string
		certs   []declared.Certificate
		confErr error
		want    string // the planned certificates' names
		shared  bool   // planned from the set's own slice
		targets string // each planned certificate's clusters
	}{
		{name: "all delivered", certs: []declared.Certificate{cert("x", "a"), cert("y", "b"), cert("z", "a")}, want: "x,y,z", shared: true, targets: "a,b,a"},
		{name: "first left out", certs: []declared.Certificate{cert("x", "nope"), cert("y", "b"), cert("z", "a")}, want: "y,z", targets: "b,a"},
		{name: "middle left out", certs: []declared.Certificate{cert("x", "a"), cert("y", "nope"), cert("z", "a")}, want: "x,z", targets: "a,a"},
		{name: "last left out", certs: []declared.Certificate{cert("x", "a"), cert("y", "b"), cert("z", "nope")}, want: "x,y", targets: "a,b"},
		{name: "none delivered", certs: []declared.Certificate{cert("x", "nope"), cert("y", "nope")}, want: ""},
		{name: "certsync.yaml wrong", certs: []declared.Certificate{cert("x", "a")}, confErr: errors.New("certsync.yaml: malformed"), want: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &Reconciler{cfg: Config{ClusterName: "a"}}
			p := &pass{set: declared.Set{Certificates: append([]declared.Certificate(nil), tt.certs...)}}
			keys := make([]string, len(tt.certs))
			for i := range tt.certs {
				keys[i] = tt.certs[i].Key()
			}
			got := r.deliver(p, conf, tt.confErr, keys)
			var names, targets []string
			for i := range got {
				names = append(names, got[i].Name)
				targets = append(targets, strings.Join(p.state.Targets[got[i].Key()], "+"))
			}
			if strings.Join(names, ",") != tt.want || strings.Join(targets, ",") != tt.targets {
				t.Errorf("planned %v to %v, want %s to %s", names, targets, tt.want, tt.targets)
			}
			if shared := len(got) > 0 && &got[0] == &p.set.Certificates[0]; shared != tt.shared {
				t.Errorf("planned from the set's slice: %v, want %v", shared, tt.shared)
			}
			if left := len(tt.certs) - len(got); len(p.problems) != left {
				t.Errorf("%d problems for %d left out: %v", len(p.problems), left, p.problems)
			}
			for i := range tt.certs {
				if p.set.Certificates[i].Name != tt.certs[i].Name {
					t.Fatalf("the set changed: %v", p.set.Certificates)
				}
			}
		})
	}
}
