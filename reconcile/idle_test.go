package reconcile

import (
	"context"
	"strings"
	"testing"
	"time"
)

// An idle pass reuses what the previous idle pass read from the same
// head (reuseIdle); it must still see what moves without a commit — the
// time, the cluster — and read again when the head moves.
func TestIdlePassesStayCorrect(t *testing.T) {
	ca, now := newTestCA(t), t0
	repo := hashedRepo{newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b")})}
	cluster := &recordingCluster{}
	enc := &countingEnc{n: map[string]int{}}
	r := verifyingReconciler(t, repo, enc, &memStore{}, 0, cluster, ca, &now)
	if res := mustPass(t, r); len(res.Issued) != 2 {
		t.Fatalf("issued %d, want 2", len(res.Issued))
	}
	for _, step := range []struct {
		name   string
		change func(t *testing.T)
		// want is the kinds of the plan's actions, sorted by subject.
		want string
	}{
		{name: "first idle pass", want: ""},
		{name: "idle again, on the same head", want: ""},
		{name: "a Secret deleted from the cluster", change: func(*testing.T) {
			cluster.Delete(context.Background(), "ns", "a-tls")
		}, want: "Apply ns/a"},
		{name: "idle after the apply", want: ""},
		{name: "the head moves: a declaration changed", change: func(t *testing.T) {
			repo.edit(t, "b.yaml", func(s string) string {
				return strings.Replace(s, "[b.example.test]", "[b.example.test, www.b.example.test]", 1)
			})
		}, want: "Reissue ns/b"},
		{name: "idle after the reissue", want: ""},
		// Last: the test CA's certificates all end at t0+90d.
		{name: "time passes the renewal, no commit", change: func(*testing.T) {
			now = now.Add(80 * 24 * time.Hour)
		}, want: "Renew ns/a,Renew ns/b"},
	} {
		if step.change != nil {
			step.change(t)
		}
		res := mustPass(t, r)
		var got []string
		for _, a := range res.Plan.Actions {
			if a.Kind != Wait {
				got = append(got, string(a.Kind)+" "+a.Subject())
			}
		}
		if strings.Join(got, ",") != step.want {
			t.Errorf("%s: plan %v, want %q", step.name, got, step.want)
		}
		if (r.idle != nil) != (step.want == "") {
			t.Errorf("%s: kept for the next pass: %v, want it kept after an idle pass only", step.name, r.idle != nil)
		}
		if len(res.Problems) > 0 {
			t.Errorf("%s: problems %v", step.name, res.Problems)
		}
	}
	if ca.orders != 5 {
		t.Errorf("%d orders, want 2 issued, 1 reissued, 2 renewed", ca.orders)
	}
}
