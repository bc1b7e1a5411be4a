package gitsrc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/certsync/certsync/internal/testbed"
)

// TestPendingOnto follows two unpushed local commits while the remote
// moves under them: another writer pushes, the branch is rewound, force-
// pushed, replaced by an unrelated history. PendingOnto tells whether the
// commits still sit on the remote head; PendingChanges keeps describing
// what they wrote — those two commits, whatever the remote did — so they
// can be re-applied on the new head. The clone fetches heads only, so
// every step also proves the walk never needs history it does not hold.
func TestPendingOnto(t *testing.T) {
	ctx := context.Background()
	g, url := seeded(t)
	auth := Auth{Username: user, Password: pass}
	r, other := open(t, url, auth), open(t, url, auth)
	s, err := r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seed := s.Commit()
	const secret = "secrets/default/shop/"
	ours := "D certificates/web.yaml, W " + secret + "a.yaml=a2, W " + secret + "b.yaml=b"

	a, err := r.Commit(ctx, s, []Change{{Path: secret + "a.yaml", Content: []byte("a1")}, {Path: "certificates/web.yaml", Delete: true}}, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit(ctx, a, []Change{{Path: secret + "a.yaml", Content: []byte("a2")}, {Path: secret + "b.yaml", Content: []byte("b")}}, "b"); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name         string
		moveRemote   func()
		wantPending  int
		wantDescends bool
		wantChanges  string
	}{
		{"on the remote head", func() {}, 2, true, ours},
		{"another writer pushed", func() {
			os, err := other.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.Commit(ctx, os, []Change{{Path: "x.yaml", Content: []byte("x")}}, "x"); err != nil {
				t.Fatal(err)
			}
			if err := other.Push(ctx); err != nil {
				t.Fatal(err)
			}
		}, 2, false, ours},
		{"rewound to where they started", func() { g.Git("certs", "update-ref", "refs/heads/main", seed) }, 2, true, ours},
		{"force-pushed over", func() {
			g.Git("certs", "update-ref", "refs/heads/main", commitTree(g, seed, "rewritten"))
		}, 2, false, ours},
		{"replaced by an unrelated history", func() {
			g.Git("certs", "update-ref", "refs/heads/main", commitTree(g, "", "orphan"))
		}, 2, false, ours},
	}
	for _, st := range steps {
		st.moveRemote()
		if _, err := r.Fetch(ctx); err != nil {
			t.Fatalf("%s: fetch: %v", st.name, err)
		}
		n, descends, err := r.PendingOnto(ctx)
		if err != nil || n != st.wantPending || descends != st.wantDescends {
			t.Errorf("%s: PendingOnto = %d, %v, %v; want %d, %v", st.name, n, descends, err, st.wantPending, st.wantDescends)
		}
		changes, err := r.PendingChanges(ctx)
		if got := describeChanges(changes); err != nil || got != st.wantChanges {
			t.Errorf("%s: PendingChanges = %s, %v\nwant %s", st.name, got, err, st.wantChanges)
		}
	}

	// What a caller does with them: re-apply on the new head and push.
	changes, _ := r.PendingChanges(ctx)
	remote, err := r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reset(ctx, remote); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit(ctx, remote, changes, "re-applied"); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if n, descends, err := r.PendingOnto(ctx); n != 0 || !descends || err != nil {
		t.Fatalf("after push: %d, %v, %v", n, descends, err)
	}
	final, err := other.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := final.ReadFile(secret + "a.yaml"); string(b) != "a2" {
		t.Fatalf("re-applied content = %q", b)
	}
}

func TestPendingOntoEmptyRemote(t *testing.T) {
	ctx := context.Background()
	g := testbed.StartGitHTTP(t, "", "")
	g.CreateRepo("empty")
	r := open(t, g.URL("empty"), Auth{})
	s, err := r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, descends, err := r.PendingOnto(ctx); n != 0 || !descends || err != nil {
		t.Fatalf("nothing committed: %d, %v, %v", n, descends, err)
	}
	if _, err := r.Commit(ctx, s, []Change{{Path: "a.yaml", Content: []byte("x")}}, "first"); err != nil {
		t.Fatal(err)
	}
	if n, descends, err := r.PendingOnto(ctx); n != 1 || !descends || err != nil {
		t.Fatalf("first commit of a new branch: %d, %v, %v; want 1, true", n, descends, err)
	}
	if got, _ := r.PendingChanges(ctx); describeChanges(got) != "W a.yaml=x" {
		t.Fatalf("changes = %s", describeChanges(got))
	}
}

// commitTree writes a commit on the server with the parent's tree (an
// empty tree without parent), as a force-push would leave it.
func commitTree(g *testbed.GitHTTP, parent, message string) string {
	tree := "4b825dc642cb6eb9a060e54bf8d69288fbee4904" // Git's empty tree
	args := []string{"-c", "user.name=Someone", "-c", "user.email=someone@example.com", "commit-tree"}
	if parent != "" {
		tree = strings.TrimSpace(g.Git("certs", "rev-parse", parent+"^{tree}"))
		args = append(args, "-p", parent)
	} else {
		g.Git("certs", "mktree") // stores the empty tree
	}
	return strings.TrimSpace(g.Git("certs", append(args, tree, "-m", message)...))
}

func describeChanges(cs []Change) string {
	var out []string
	for _, c := range cs {
		if c.Delete {
			out = append(out, "D "+c.Path)
		} else {
			out = append(out, fmt.Sprintf("W %s=%s", c.Path, c.Content))
		}
	}
	return strings.Join(out, ", ")
}
