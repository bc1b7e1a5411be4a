package cluster

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestPrimeCarriesSeenVersions: a Client primed with what another Client
// saw (a later process of the agent) lists metadata only, reads in full
// just the Secret written since, and still finds its drift; what it then
// carries forgets a deleted Secret. A Client of another cluster identity
// is the caller's to refuse (Identity differs per cluster).
func TestPrimeCarriesSeenVersions(t *testing.T) {
	ctx := context.Background()
	owner := Owner{Repository: "https://git.example/seen.git", Branch: "main", Cluster: "default"}
	first, raw := clientFor(t, owner)
	if got := first.Seen(); got != nil {
		t.Fatalf("a Client that never listed carries %v", got)
	}
	for _, name := range []string{"a-tls", "b-tls", "c-tls"} {
		if err := first.Apply(ctx, tlsSecret(name)); err != nil {
			t.Fatal(err)
		}
	}
	observe(t, first)
	seen := first.Seen()
	if len(seen) != 3 {
		t.Fatalf("carried %v, want the 3 Secrets", seen)
	}
	id, err := first.Identity(ctx)
	if err != nil || id == "" {
		t.Fatalf("identity %q, %v", id, err)
	}

	// Between the processes: b's data edited by hand, c deleted.
	b, _ := raw.CoreV1().Secrets("shop").Get(ctx, "b-tls", metav1.GetOptions{})
	b.Data["tls.crt"] = []byte("edited by hand")
	if _, err := raw.CoreV1().Secrets("shop").Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := raw.CoreV1().Secrets("shop").Delete(ctx, "c-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	next, gets, fullLists := readCountingClient(t, owner)
	if id2, _ := next.Identity(ctx); id2 != id {
		t.Fatalf("the same cluster has identities %q and %q", id, id2)
	}
	next.Prime(seen)
	obs := observe(t, next)
	if len(obs) != 2 || obs["shop/a-tls"].Drifted || !obs["shop/b-tls"].Drifted {
		t.Fatalf("primed Client observed %v; want a in order and b drifted", obs)
	}
	if n, lists := gets.Load(), fullLists.Load(); n != 1 || lists != 0 {
		t.Fatalf("read %d Secrets one by one and listed with data %d times; want 1 (b, written since) and 0", n, lists)
	}
	if carried := next.Seen(); len(carried) != 1 || carried["shop/a-tls"] == "" {
		t.Fatalf("carries %v; want a only (b drifted, c deleted)", carried)
	}
}
