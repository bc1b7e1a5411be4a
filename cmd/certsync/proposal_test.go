package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestProposalBranch: main is protected; the issuer pushes its commits to
// certsync/proposal. Nothing waiting there is ordered again, a certificate
// added to main meanwhile joins the proposal, and once a person merges it
// the agent has nothing left to do.
func TestProposalBranch(t *testing.T) {
	b := newBed(t, nil)
	seed := b.head(t)
	args := []string{"--role", "issuer", "--proposal-branch", "certsync/proposal"}
	orders := b.acme.Orders()
	if code, out, errOut := b.run(t, args...); code != 0 {
		t.Fatalf("first pass: exit %d\n%s\n%s", code, out, errOut)
	}
	if b.head(t) != seed {
		t.Fatal("certsync pushed to the protected branch")
	}
	if got := b.acme.Orders() - orders; got != len(exampleCerts) {
		t.Fatalf("orders %d, want %d", got, len(exampleCerts))
	}
	proposed := func() []string {
		return strings.Fields(gitCmd(t, b.bare, "ls-tree", "-r", "--name-only", "certsync/proposal", "secrets/"))
	}
	if n := len(proposed()); n != len(exampleCerts) {
		t.Fatalf("the proposal holds %v", proposed())
	}
	if strings.Contains(gitCmd(t, b.bare, "ls-tree", "-r", "--name-only", "main"), "claims/") {
		t.Error("a claim reached main")
	}

	// Unmerged: the next pass orders nothing and pushes nothing.
	tip := strings.TrimSpace(gitCmd(t, b.bare, "rev-parse", "certsync/proposal"))
	orders = b.acme.Orders()
	if code, out, errOut := b.run(t, args...); code != 0 || b.acme.Orders() != orders {
		t.Fatalf("second pass: exit %d, %d orders\n%s\n%s", code, b.acme.Orders()-orders, out, errOut)
	}
	if now := strings.TrimSpace(gitCmd(t, b.bare, "rev-parse", "certsync/proposal")); now != tip {
		t.Fatal("a pass with nothing new rewrote the proposal")
	}

	// A person adds a certificate to main: only it is ordered, and the
	// proposal now holds all four, on top of main's new head.
	b.edit(t, "add blog", func(dir string) {
		writeFile(t, filepath.Join(dir, "certificates", "blog.yaml"), strings.Replace(strings.Replace(string(b.file(t, "certificates/api/api.yaml")),
			"name: api\n", "name: blog\n", 1), "api-tls", "blog-tls", 1))
	})
	orders = b.acme.Orders()
	if code, out, errOut := b.run(t, args...); code != 0 || b.acme.Orders()-orders != 1 {
		t.Fatalf("third pass: exit %d, %d orders (want 1)\n%s\n%s", code, b.acme.Orders()-orders, out, errOut)
	}
	if n := len(proposed()); n != len(exampleCerts)+1 {
		t.Fatalf("the proposal holds %v", proposed())
	}
	if base := strings.TrimSpace(gitCmd(t, b.bare, "merge-base", "main", "certsync/proposal")); base != b.head(t) {
		t.Error("the proposal is not on main's head")
	}

	// Merged: nothing left.
	dir := t.TempDir()
	gitCmd(t, dir, "clone", "--quiet", b.bare, ".")
	gitCmd(t, dir, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "merge", "-q", "--no-ff", "-m", "merge certsync's proposal", "origin/certsync/proposal")
	gitCmd(t, dir, "push", "--quiet", "origin", "HEAD:main")
	merged := b.head(t)
	orders = b.acme.Orders()
	if code, out, errOut := b.run(t, args...); code != 0 || b.acme.Orders() != orders || !strings.Contains(out, "Git is up to date") {
		t.Fatalf("after the merge: exit %d, %d orders\n%s\n%s", code, b.acme.Orders()-orders, out, errOut)
	}
	if b.head(t) != merged {
		t.Fatal("main moved after the merge")
	}
	if code, _, errOut := b.run(t, "--proposal-branch", "certsync/proposal"); code == 0 || !strings.Contains(errOut, "--proposal-branch needs --role issuer") {
		t.Fatalf("a proposal branch with a cluster role must be refused: exit %d %s", code, errOut)
	}
}
