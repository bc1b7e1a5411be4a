package gitsrc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certsync/certsync/internal/testbed"
)

// TestProposalBranch: with a protected main, commits go to the proposal
// branch; what it holds is carried onto main's newest head on every fetch
// (so nothing in it is produced twice), and after a person merges it
// there is nothing left to carry.
func TestProposalBranch(t *testing.T) {
	ctx := context.Background()
	g, url := seeded(t)
	bare := filepath.Join(g.Root, "certs.git")
	git := func(dir string, args ...string) string {
		t.Helper()
		out, err := exec.Command(testbed.Git(t), append([]string{"-C", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	files := func(ref string) []string { return strings.Fields(git(bare, "ls-tree", "-r", "--name-only", ref)) }
	person := func(msg string, change func(dir string)) {
		dir := t.TempDir()
		git(dir, "clone", "-q", bare, ".")
		change(dir)
		git(dir, "add", "-A")
		git(dir, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", msg)
		git(dir, "push", "-q", "origin", "HEAD:main")
	}
	mainHead := func() string { return git(bare, "rev-parse", "main") }

	r, err := Open(ctx, Options{URL: url, Branch: "main", ProposalBranch: "certsync/proposal", Dir: t.TempDir(), Auth: Auth{Username: user, Password: pass}})
	if err != nil {
		t.Fatal(err)
	}
	seed := mainHead()
	s, err := r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit(ctx, s, []Change{{Path: "secrets/a.yaml", Content: []byte("a")}}, "certsync: a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if mainHead() != seed {
		t.Fatal("main moved: certsync must push to the proposal branch only")
	}
	if got := files("certsync/proposal"); !slices.Equal(got, []string{"certificates/web.yaml", "secrets/a.yaml"}) {
		t.Fatalf("proposal holds %v", got)
	}

	// main moves on while the proposal is open.
	person("a new certificate", func(dir string) { os.WriteFile(filepath.Join(dir, "certificates", "api.yaml"), []byte("api"), 0o644) })
	s, err = r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Paths(), []string{"certificates/api.yaml", "certificates/web.yaml", "secrets/a.yaml"}) {
		t.Fatalf("fetch must see main's head with the proposal carried: %v", s.Paths())
	}
	if n, _ := r.Pending(ctx); n != 0 {
		t.Fatalf("nothing new is pending, got %d", n)
	}
	if _, err := r.Commit(ctx, s, []Change{{Path: "secrets/b.yaml", Content: []byte("b")}}, "certsync: b"); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if got := files("certsync/proposal"); !slices.Equal(got, []string{"certificates/api.yaml", "certificates/web.yaml", "secrets/a.yaml", "secrets/b.yaml"}) {
		t.Fatalf("the rebuilt proposal holds %v", got)
	}
	if base := git(bare, "merge-base", "main", "certsync/proposal"); base != mainHead() {
		t.Fatalf("the proposal must sit on main's head (a clean pull request), merge base %s", base)
	}
	if got := files("main"); slices.Contains(got, "secrets/a.yaml") {
		t.Fatal("main got certsync's files before the merge")
	}

	// A fetch with nothing new leaves nothing to push.
	if _, err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Pending(ctx); n != 0 {
		t.Fatalf("a quiet fetch made %d commits to push", n)
	}

	// A person merges the proposal: nothing is left to carry.
	dir := t.TempDir()
	git(dir, "clone", "-q", bare, ".")
	git(dir, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "merge", "-q", "--no-ff", "-m", "merge certsync's proposal", "origin/certsync/proposal")
	git(dir, "push", "-q", "origin", "HEAD:main")
	s, err = r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Commit() != mainHead() {
		t.Fatalf("after the merge the snapshot is main's head %s, got %s", mainHead(), s.Commit())
	}
}
