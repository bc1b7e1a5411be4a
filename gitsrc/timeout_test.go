package gitsrc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/certsync/certsync/internal/testbed"
)

// TestTimeout: a server that accepts the connection and never answers
// fails Fetch and Push after Options.Timeout, over HTTP and SSH, with an
// error naming what timed out and what to check.
func TestTimeout(t *testing.T) {
	srv := testbed.StartSilentServer(t)
	tests := []struct {
		name, url string
		auth      Auth
	}{
		{"http", "http://" + srv.Addr + "/certs.git", Auth{Username: user, Password: pass}},
		{"ssh", "ssh://git@" + srv.Addr + "/certs.git", Auth{SSHKey: clientKey(t), InsecureIgnoreHostKey: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The test's own bound: generous, and only there so a
			// regression fails instead of hanging the suite.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := Open(ctx, Options{URL: tt.url, Branch: "main", Dir: t.TempDir(), Auth: tt.auth, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			checkTimeout(t, ctx, "fetch "+tt.url, func() error { _, err := r.Fetch(ctx); return err })

			empty, err := r.Local(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Commit(ctx, empty, []Change{{Path: "a.yaml", Content: []byte("a")}}, "a"); err != nil {
				t.Fatal(err)
			}
			checkTimeout(t, ctx, "push "+tt.url, func() error { return r.Push(ctx) })
			if n, _ := r.Pending(ctx); n != 1 {
				t.Errorf("the unpushed commit must stay: pending = %d", n)
			}
		})
	}
	if srv.Accepted() < 4 {
		t.Errorf("the silent server saw %d connections: the timeouts were not met on the wire", srv.Accepted())
	}
}

// checkTimeout runs op and checks it failed on Options.Timeout. An op that
// ignores even the test's context fails the test after a minute instead
// of hanging the suite.
func checkTimeout(t *testing.T, ctx context.Context, what string, op func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s hung: neither Options.Timeout nor the test's context stopped it", what)
	}
	want := what + ": no answer within 1s: is the Git server up? (--git-timeout)"
	if ctx.Err() != nil {
		t.Fatalf("%s hung past the test's own 30 s bound: %v", what, err)
	}
	if !errors.Is(err, ErrTimeout) || err.Error() != want {
		t.Fatalf("err = %v\nwant %q wrapping ErrTimeout", err, want)
	}
}

// TestTimeoutLeavesWorkingServersAlone: the deadline only bounds an
// exchange; a server that answers is not affected, and a caller's own
// cancellation is reported as such, not as the server's fault.
func TestTimeoutLeavesWorkingServersAlone(t *testing.T) {
	g, url := seeded(t)
	srv := testbed.StartGitSSH(t, g.Root)
	for _, u := range []struct {
		url  string
		auth Auth
	}{{url, Auth{Username: user, Password: pass}}, {srv.URL("certs"), Auth{SSHKey: srv.ClientKeyPEM(), KnownHosts: srv.KnownHosts()}}} {
		r, err := Open(context.Background(), Options{URL: u.url, Branch: "main", Dir: t.TempDir(), Auth: u.auth, Timeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Fetch(context.Background()); err != nil {
			t.Fatalf("%s: %v", u.url, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = r.Fetch(ctx)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) || strings.Contains(err.Error(), "no answer") {
			t.Fatalf("%s: a cancelled fetch: %v", u.url, err)
		}
	}
}

// clientKey makes an SSH client key at run time.
func clientKey(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}
