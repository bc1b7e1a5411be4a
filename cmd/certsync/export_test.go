package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/pki"
)

// TestExportFollowsRenewals: a VM takes a certificate as PEM files from
// Git; with --watch it gets the renewal and its hook runs.
func TestExportFollowsRenewals(t *testing.T) {
	b := issuedBed(t)
	out := filepath.Join(t.TempDir(), "certs")
	exportCmd := func(ctx context.Context, stdout *bytes.Buffer, extra ...string) int {
		var errb bytes.Buffer
		args := commandArgs("export", append(append([]string{"shop/checkout", "--out", out}, b.args...), extra...)...)
		code := run(ctx, args, func(k string) string { return b.env[k] }, stdout, &errb)
		if code != 0 || errb.Len() > 0 {
			t.Logf("export stderr: %s", errb.String())
		}
		return code
	}
	var stdout bytes.Buffer
	if code := exportCmd(context.Background(), &stdout); code != 0 || !strings.Contains(stdout.String(), "exported shop/checkout") {
		t.Fatalf("export exited %d: %s", code, stdout.String())
	}
	first := checkExported(t, out)

	// Follow renewals: the hook writes a marker.
	marker := filepath.Join(t.TempDir(), "reloaded")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var watchOut bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		exportCmd(ctx, &watchOut, "--watch", "--interval", "200ms", "--hook", "touch "+marker, "--cache-dir", filepath.Join(b.dir, "export-clone"))
	}()
	defer func() { cancel(); wg.Wait() }()
	// A renewal request (as certsync renew writes it, a minute ahead so it
	// is newer than the issuance at second resolution), then a pass.
	b.edit(t, "renew checkout", func(dir string) {
		content, _ := committed.MarshalRenewRequest(committed.RenewRequest{Certificate: "shop/checkout", RequestedAt: time.Now().Add(time.Minute), RequestedBy: "dev"})
		writeFile(t, filepath.Join(dir, committed.RenewRequestPath("shop", "checkout")), string(content))
	})
	if code, o, e := b.run(t, "--no-apply"); code != 0 {
		t.Fatalf("renewal pass: %d\n%s\n%s", code, o, e)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("the hook did not run after the renewal (committed serial %s, exported %s)\n%s", b.record(t, "shop", "checkout-tls").Serial, first, watchOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if second := checkExported(t, out); second == first {
		t.Fatal("the exported certificate was not renewed")
	}
}

// checkExported checks the files' modes and that key and certificate
// belong together; it returns the certificate's serial.
func checkExported(t *testing.T, dir string) string {
	t.Helper()
	for name, mode := range map[string]os.FileMode{"tls.key": 0o600, "tls-combined.pem": 0o600, "tls.crt": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v, mode %v; want %v", name, err, fi.Mode().Perm(), mode)
		}
	}
	certPEM, _ := os.ReadFile(filepath.Join(dir, "tls.crt"))
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "tls.key"))
	combined, _ := os.ReadFile(filepath.Join(dir, "tls-combined.pem"))
	chain, err := pki.ParseChain(certPEM)
	if err != nil || len(chain) == 0 {
		t.Fatalf("tls.crt: %v", err)
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil || !pki.KeyMatches(chain[0], key) {
		t.Fatalf("tls.key does not match tls.crt: %v", err)
	}
	if !bytes.HasPrefix(combined, bytes.TrimRight(keyPEM, "\n")) || !bytes.HasSuffix(combined, certPEM) {
		t.Fatal("tls-combined.pem is not the key followed by the chain")
	}
	return pki.Serial(chain[0])
}
