package gitsrc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"

	"github.com/certsync/certsync/internal/testbed"
)

// TestSignedCommitsVerify signs with each kind of key and checks the
// commit with `git verify-commit`, as an auditor would. Keys are made at
// run time: no private key is ever committed.
func TestSignedCommitsVerify(t *testing.T) {
	for _, tool := range []string{"ssh-keygen", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to verify signed commits as git does: %v", tool, err)
		}
	}
	tests := []struct {
		name   string
		key    func(t *testing.T, dir string) (private []byte, verifyConfig []string)
		format string
	}{
		{name: "ssh ed25519", key: func(t *testing.T, dir string) ([]byte, []string) {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			return sshKey(t, dir, priv)
		}},
		{name: "ssh rsa", key: func(t *testing.T, dir string) ([]byte, []string) {
			priv, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			return sshKey(t, dir, priv)
		}},
		{name: "openpgp", key: func(t *testing.T, dir string) ([]byte, []string) {
			e, err := openpgp.NewEntity("certsync", "test", "certsync@example.com", nil)
			if err != nil {
				t.Fatal(err)
			}
			var priv, pub bytes.Buffer
			w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
			if err := e.SerializePrivate(w, nil); err != nil {
				t.Fatal(err)
			}
			w.Close()
			w, _ = armor.Encode(&pub, openpgp.PublicKeyType, nil)
			e.Serialize(w)
			w.Close()
			home := filepath.Join(dir, "gnupg")
			os.Mkdir(home, 0o700)
			cmd := exec.Command("gpg", "--batch", "--homedir", home, "--import")
			cmd.Stdin = &pub
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("gpg --import: %v\n%s", err, out)
			}
			return priv.Bytes(), []string{"GNUPGHOME=" + home}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir, err := os.MkdirTemp("", "sig") // short: gpg's socket paths are limited
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			key, env := tt.key(t, dir)
			signer, err := NewCommitSigner(key, nil)
			if err != nil {
				t.Fatal(err)
			}
			g, url := seeded(t)
			r, err := Open(ctx, Options{URL: url, Branch: "main", Dir: t.TempDir(), Auth: Auth{Username: user, Password: pass}, Signer: signer})
			if err != nil {
				t.Fatal(err)
			}
			s, err := r.Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Commit(ctx, s, []Change{{Path: "secrets/default/shop/web-tls.yaml", Content: []byte("a")}}, "certsync: signed\n"); err != nil {
				t.Fatal(err)
			}
			if err := r.Push(ctx); err != nil {
				t.Fatal(err)
			}
			bare := filepath.Join(g.Root, "certs.git")
			cmd := exec.Command(testbed.Git(t), append([]string{"-C", bare}, append(verifyArgs(env), "verify-commit", "-v", "main")...)...)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git verify-commit: %v\n%s", err, out)
			}
			// A commit by anyone else is not verified.
			seedDir := t.TempDir()
			exec.Command(testbed.Git(t), "clone", "-q", bare, seedDir).Run()
			os.WriteFile(filepath.Join(seedDir, "x.yaml"), []byte("x"), 0o644)
			for _, args := range [][]string{{"add", "x.yaml"}, {"-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "unsigned"}, {"push", "-q", "origin", "HEAD:main"}} {
				if out, err := exec.Command(testbed.Git(t), append([]string{"-C", seedDir}, args...)...).CombinedOutput(); err != nil {
					t.Fatalf("git %v: %v\n%s", args, err, out)
				}
			}
			cmd = exec.Command(testbed.Git(t), append([]string{"-C", bare}, append(verifyArgs(env), "verify-commit", "main")...)...)
			cmd.Env = append(os.Environ(), env...)
			if err := cmd.Run(); err == nil {
				t.Fatal("an unsigned commit verified")
			}
		})
	}
	if _, err := NewCommitSigner([]byte("not a key"), nil); err == nil || strings.Contains(err.Error(), "not a key") {
		t.Fatalf("bad key: %v", err)
	}
}

// sshKey writes the OpenSSH private key and an allowed-signers file.
func sshKey(t *testing.T, dir string, priv any) ([]byte, []string) {
	t.Helper()
	key, allowed := testbed.SSHSigningKey(t, dir, priv)
	return key, []string{"SSH_ALLOWED=" + allowed}
}

// verifyArgs turns the test's environment into git -c options.
func verifyArgs(env []string) []string {
	for _, e := range env {
		if f, ok := strings.CutPrefix(e, "SSH_ALLOWED="); ok {
			return []string{"-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile=" + f}
		}
	}
	return nil
}
