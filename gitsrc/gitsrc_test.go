package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/certsync/certsync/internal/testbed"
)

const user, pass = "bot", "t0ken"

func seeded(t *testing.T) (*testbed.GitHTTP, string) {
	t.Helper()
	g := testbed.StartGitHTTP(t, user, pass)
	g.CreateRepo("certs")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "certificates"), 0o755)
	os.WriteFile(filepath.Join(dir, "certificates", "web.yaml"), []byte("kind: Certificate\n"), 0o644)
	g.Seed("certs", dir, "main")
	return g, g.URL("certs")
}

func open(t *testing.T, url string, auth Auth) *Repo {
	t.Helper()
	r, err := Open(context.Background(), Options{URL: url, Branch: "main", Dir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReadCommitPushOverHTTP(t *testing.T) {
	ctx := context.Background()
	_, url := seeded(t)
	r := open(t, url, Auth{Username: user, Password: pass})
	s, err := r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Paths(); len(got) != 1 || got[0] != "certificates/web.yaml" {
		t.Fatalf("paths = %v", got)
	}
	s2, err := r.Commit(ctx, s, []Change{
		{Path: "secrets/default/shop/web-tls.yaml", Content: []byte("a")},
		{Path: "secrets/default/api/api-tls.yaml", Content: []byte("b")},
		{Path: "certificates/web.yaml", Delete: true},
	}, "certsync: test\n\nCertificate: shop/web\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	other := open(t, url, Auth{Username: user, Password: pass})
	got, err := other.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit() != s2.Commit() || strings.Join(got.Paths(), ",") != "secrets/default/api/api-tls.yaml,secrets/default/shop/web-tls.yaml" {
		t.Fatalf("second clone sees %s %v", got.Commit(), got.Paths())
	}
	if b, _ := got.ReadFile("secrets/default/shop/web-tls.yaml"); string(b) != "a" {
		t.Fatalf("content = %q", b)
	}
	if _, err := got.ReadFile("certificates/web.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted file still there: %v", err)
	}
	if n, _ := r.Pending(ctx); n != 0 {
		t.Fatalf("pending after push = %d", n)
	}
}

func TestWrongPassword(t *testing.T) {
	_, url := seeded(t)
	r := open(t, url, Auth{Username: user, Password: "wrong"})
	_, err := r.Fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "check the username and password") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v", err)
	}
}

func TestEmptyRemote(t *testing.T) {
	ctx := context.Background()
	g := testbed.StartGitHTTP(t, "", "")
	bare := g.CreateRepo("empty")
	r := open(t, g.URL("empty"), Auth{})
	s, err := r.Fetch(ctx)
	if err != nil || s.Commit() != "" || len(s.Paths()) != 0 {
		t.Fatalf("empty remote: %v %q %v", err, s.Commit(), s.Paths())
	}
	if _, err := r.Commit(ctx, s, []Change{{Path: "a.yaml", Content: []byte("x")}}, "first"); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(testbed.GitObjectsContaining(t, bare, "first")); n != 1 {
		t.Fatalf("first commit not on the server (%d objects)", n)
	}
}

func TestPushRace(t *testing.T) {
	ctx := context.Background()
	_, url := seeded(t)
	a, b := open(t, url, Auth{Username: user, Password: pass}), open(t, url, Auth{Username: user, Password: pass})
	sa, _ := a.Fetch(ctx)
	sb, _ := b.Fetch(ctx)
	a.Commit(ctx, sa, []Change{{Path: "a.yaml", Content: []byte("a")}}, "a")
	b.Commit(ctx, sb, []Change{{Path: "b.yaml", Content: []byte("b")}}, "b")
	if err := a.Push(ctx); err != nil {
		t.Fatal(err)
	}
	err := b.Push(ctx)
	if !errors.Is(err, ErrNonFastForward) {
		t.Fatalf("lost race: err = %v, want ErrNonFastForward", err)
	}
	remote, err := b.Fetch(ctx) // b has a pending commit: its branch stays
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reset(ctx, remote); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, remote, []Change{{Path: "b.yaml", Content: []byte("b")}}, "b again"); err != nil {
		t.Fatal(err)
	}
	if err := b.Push(ctx); err != nil {
		t.Fatal(err)
	}
	final, _ := open(t, url, Auth{Username: user, Password: pass}).Fetch(ctx)
	if !strings.Contains(strings.Join(final.Paths(), ","), "a.yaml,b.yaml") {
		t.Fatalf("paths = %v", final.Paths())
	}
}

// TestConcurrentWriters races real clones with a bounded retry loop, as
// reconcile does, and checks no writer's file is lost.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	_, url := seeded(t)
	const writers = 4
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Open(ctx, Options{URL: url, Branch: "main", Dir: t.TempDir(), Auth: Auth{Username: user, Password: pass}})
			if err != nil {
				errs <- err
				return
			}
			for attempt := 0; attempt < 20; attempt++ {
				s, err := r.Fetch(ctx)
				if err != nil {
					errs <- err
					return
				}
				r.Reset(ctx, s)
				if _, err := r.Commit(ctx, s, []Change{{Path: fmt.Sprintf("w/%d.yaml", i), Content: []byte("x")}}, "w"); err != nil {
					errs <- err
					return
				}
				err = r.Push(ctx)
				if err == nil {
					return
				}
				if !errors.Is(err, ErrNonFastForward) {
					errs <- err
					return
				}
			}
			errs <- fmt.Errorf("writer %d never pushed", i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	final, _ := open(t, url, Auth{Username: user, Password: pass}).Fetch(ctx)
	for i := range writers {
		if _, err := final.ReadFile(fmt.Sprintf("w/%d.yaml", i)); err != nil {
			t.Errorf("writer %d's file lost", i)
		}
	}
}

func TestRemoteAwayThenBack(t *testing.T) {
	ctx := context.Background()
	g, url := seeded(t)
	r := open(t, url, Auth{Username: user, Password: pass})
	s, _ := r.Fetch(ctx)
	committed, _ := r.Commit(ctx, s, []Change{{Path: "x.yaml", Content: []byte("x")}}, "x")
	g.SetDown(true)
	err := r.Push(ctx)
	if err == nil || errors.Is(err, ErrNonFastForward) {
		t.Fatalf("push to a down remote: %v", err)
	}
	if n, _ := r.Pending(ctx); n != 1 {
		t.Fatalf("pending = %d, want 1", n)
	}
	g.SetDown(false)
	if _, err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	if local, _ := r.Local(ctx); local.Commit() != committed.Commit() {
		t.Fatal("fetch dropped the unpushed commit")
	}
	if err := r.Push(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Pending(ctx); n != 0 {
		t.Fatalf("pending after push = %d", n)
	}
}

func TestSSH(t *testing.T) {
	ctx := context.Background()
	g, _ := seeded(t)
	srv := testbed.StartGitSSH(t, g.Root)
	other := testbed.StartGitSSH(t, g.Root) // a different host key
	tests := []struct {
		name    string
		auth    Auth
		wantErr string
	}{
		{"known host", Auth{SSHKey: srv.ClientKeyPEM(), KnownHosts: srv.KnownHosts()}, ""},
		{"unknown host", Auth{SSHKey: srv.ClientKeyPEM(), KnownHosts: nil}, "is not in known_hosts"},
		{"changed host key", Auth{SSHKey: srv.ClientKeyPEM(), KnownHosts: []byte(strings.Replace(string(other.KnownHosts()), hostPort(other), hostPort(srv), 1))}, "CHANGED"},
		{"insecure", Auth{SSHKey: srv.ClientKeyPEM(), InsecureIgnoreHostKey: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, srv.URL("certs"), tt.auth)
			s, err := r.Fetch(ctx)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Commit(ctx, s, []Change{{Path: "ssh/" + strings.ReplaceAll(tt.name, " ", "-"), Content: []byte("x")}}, "ssh"); err != nil {
				t.Fatal(err)
			}
			if err := r.Push(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func hostPort(g *testbed.GitSSH) string {
	return strings.Fields(string(g.KnownHosts()))[0]
}

func TestValidatePath(t *testing.T) {
	for _, p := range []string{"", "../x", "/etc/passwd", "a/../../b", ".git/config", "a/.git/x", "a//b", "a/./b", `a\b`} {
		if err := ValidatePath(p); err == nil {
			t.Errorf("ValidatePath(%q) accepted", p)
		}
	}
	for _, p := range []string{"secrets/default/ns/a.yaml", ".sops.yaml"} {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q): %v", p, err)
		}
	}
	r := &Repo{}
	if _, err := r.Commit(context.Background(), &Snapshot{}, []Change{{Path: "../escape", Content: []byte("x")}}, "m"); err == nil || !strings.Contains(err.Error(), "../escape") {
		t.Errorf("Commit accepted a traversal: %v", err)
	}
}
