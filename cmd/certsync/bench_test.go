package main

// Scale benchmarks (make bench): a repository of 10,000 certificates, with
// nothing due and with 1,000 due. Each reports the pass time and memory:
// the agent's heap after the pass and, for a one-shot `certsync reconcile`
// process, its peak RSS.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/encrypt"
	"github.com/certsync/certsync/gitsrc"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
	"github.com/certsync/certsync/reconcile"
	"github.com/certsync/certsync/render"
)

const benchCerts = 10_000

// scaleRepo is a bare repository with n declared and committed
// certificates; the first due of them expire at dueAt.
type scaleRepo struct {
	bare, keyFile string
	args          []string
	head          string
}

func newScaleRepo(b *testing.B, n, due int, dueAt time.Time) *scaleRepo {
	b.Helper()
	a, port := theACME(b)
	dir := b.TempDir()
	id, _ := age.GenerateX25519Identity()
	r := &scaleRepo{bare: filepath.Join(dir, "certs.git"), keyFile: filepath.Join(dir, "age.key")}
	os.WriteFile(r.keyFile, []byte(id.String()+"\n"), 0o600)
	if out, err := exec.Command("git", "init", "--quiet", "--bare", "--initial-branch=main", r.bare).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	sopsConfig := "creation_rules:\n  - path_regex: ^(secrets|accounts)/.*\\.yaml$\n    age: " + id.Recipient().String() + "\n"
	enc, err := encrypt.New(encrypt.Config{SOPSConfig: []byte(sopsConfig)})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(caDER)

	changes := []gitsrc.Change{
		{Path: ".sops.yaml", Content: []byte(sopsConfig)},
		{Path: "issuers/le.yaml", Content: []byte(`apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: le}
spec:
  acme:
    server: ` + a.DirectoryURL + `
    privateKeySecretRef: {name: le-account}
    solvers: [{http01: {}}]
`)},
	}
	now := time.Now()
	for i := range n {
		ns, name := fmt.Sprintf("ns%d", i%50), fmt.Sprintf("c%d", i)
		manifest := fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: %s, namespace: %s}
spec:
  secretName: %s-tls
  dnsNames: [%s.%s.bench.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: le, kind: ClusterIssuer}
`, name, ns, name, name, ns)
		src := fmt.Sprintf("certificates/%s/%s.yaml", ns, name)
		changes = append(changes, gitsrc.Change{Path: src, Content: []byte(manifest)})
		set := declared.ParseFile(declared.File{Path: src, Content: []byte(manifest)})
		c := &set.Certificates[0]
		key, _ := pki.GenerateKey(c.PrivateKey)
		notAfter := now.Add(90 * 24 * time.Hour)
		if i < due {
			notAfter = dueAt
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(1000 + i)), DNSNames: c.DNSNames, NotBefore: now.Add(-time.Hour), NotAfter: notAfter}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
		leaf, _ := x509.ParseCertificate(der)
		keyPEM, _ := pki.MarshalKey(key, c.PrivateKey.Encoding)
		s := render.TLSSecret(render.TLS{Certificate: c, Issued: &issuer.Certificate{ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Leaf: leaf}, KeyPEM: keyPEM, IssuedAt: now, Reason: "bench"})
		plain, _ := render.Marshal(s)
		path := committed.SecretPath("default", ns, c.SecretName)
		content, err := enc.Encrypt(context.Background(), path, plain)
		if err != nil {
			b.Fatal(err)
		}
		changes = append(changes, gitsrc.Change{Path: path, Content: content})
	}
	repo, err := gitsrc.Open(context.Background(), gitsrc.Options{URL: r.bare, Branch: "main", Dir: filepath.Join(dir, "seed")})
	if err != nil {
		b.Fatal(err)
	}
	snap, err := repo.Fetch(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	head, err := repo.Commit(context.Background(), snap, changes, "seed")
	if err != nil {
		b.Fatal(err)
	}
	if err := repo.Push(context.Background()); err != nil {
		b.Fatal(err)
	}
	r.head = head.Commit()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, a.ServerCAPEM, 0o600)
	r.args = []string{"--repo", r.bare, "--branch", "main", "--age-key-file", r.keyFile,
		"--http01-addr", fmt.Sprintf("127.0.0.1:%d", port), "--acme-ca-file", caFile, "--log-level", "error", "--concurrency", "16"}
	return r
}

func (r *scaleRepo) options(b *testing.B, cacheDir string, now time.Time) *options {
	var o options
	fs := newFlagSet("reconcile", &o, func(string) string { return "" })
	if err := fs.Parse(append(append([]string{}, r.args...), "--cache-dir", cacheDir)); err != nil {
		b.Fatal(err)
	}
	o.clock = func() time.Time { return now }
	return &o
}

// reportHeap reports the live heap after a collection: what the agent
// keeps between passes.
func reportHeap(b *testing.B) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapAlloc)/(1<<20), "MB-heap")
}

// BenchmarkReadTree10k is the yardstick: fetch and read every file of the
// 10,000-certificate tree.
func BenchmarkReadTree10k(b *testing.B) {
	r := newScaleRepo(b, benchCerts, 0, time.Time{})
	repo, err := gitsrc.Open(context.Background(), gitsrc.Options{URL: r.bare, Branch: "main", Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := repo.Fetch(context.Background()); err != nil { // the clone is not part of a pass
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s, err := repo.Fetch(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range s.Paths() {
			if _, err := s.ReadFile(p); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPass10kNothingDue: one pass of the agent over 10,000 certificates
// with nothing due; "cold" is the first pass of a process, "warm" a later
// pass of the daemon (files unchanged since the last pass are not parsed
// again).
func BenchmarkPass10kNothingDue(b *testing.B) {
	r := newScaleRepo(b, benchCerts, 0, time.Time{})
	cache := b.TempDir()
	o := r.options(b, cache, time.Now())
	rec, cleanup, err := build(context.Background(), o, func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer cleanup()
	pass := func() {
		res, err := rec.Reconcile(context.Background(), reconcile.Options{})
		if err != nil || res.Plan.HasChanges() || len(res.Problems) > 0 {
			b.Fatalf("pass: %v changes=%v problems=%v", err, res.Plan.HasChanges(), res.Problems)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			rec2, cleanup2, err := build(context.Background(), o, func(string) string { return "" }, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			if res, err := rec2.Reconcile(context.Background(), reconcile.Options{}); err != nil || res.Plan.HasChanges() {
				b.Fatal(err)
			}
			cleanup2()
		}
	})
	pass() // fill the parse cache
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			pass()
		}
		reportHeap(b)
	})
	b.Run("process", func(b *testing.B) {
		bin := filepath.Join(b.TempDir(), "certsync")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
		var rss int64
		for b.Loop() {
			cmd := exec.Command(bin, append([]string{"reconcile", "--no-apply", "--cache-dir", cache}, r.args...)...)
			cmd.Env = append(os.Environ(), "GOMEMLIMIT="+os.Getenv("BENCH_GOMEMLIMIT"))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v %s", err, out)
			}
			rss = max(rss, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
		}
		b.ReportMetric(float64(rss)/1024, "MB-RSS")
	})
	// The agent: `certsync run` passing every second over the same
	// repository; its resident memory once it has done a few passes.
	b.Run("daemon", func(b *testing.B) {
		bin := filepath.Join(b.TempDir(), "certsync")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
		for b.Loop() {
			cmd := exec.Command(bin, append([]string{"run", "--no-apply", "--cache-dir", cache, "--interval", "1s", "--listen-addr", "127.0.0.1:0"}, r.args...)...)
			cmd.Env = append(os.Environ(), "GOMEMLIMIT="+os.Getenv("BENCH_GOMEMLIMIT"))
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(12 * time.Second)
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			b.ReportMetric(procKB(status, "VmRSS:")/1024, "MB-RSS")
			b.ReportMetric(procKB(status, "VmHWM:")/1024, "MB-peak-RSS")
			b.ReportMetric(procKB(status, "RssAnon:")/1024, "MB-RSS-anon")
			b.ReportMetric(procKB(status, "RssFile:")/1024, "MB-RSS-file")
		}
	})
}

// procKB reads a "Name:   1234 kB" line of /proc/PID/status.
func procKB(status []byte, name string) float64 {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb
		}
	}
	return 0
}

// BenchmarkPass10kRenew1k: 1,000 of the 10,000 certificates are due and
// are renewed through the in-process Pebble (orders, encryption, one
// commit, push).
func BenchmarkPass10kRenew1k(b *testing.B) {
	r := newScaleRepo(b, benchCerts, 1000, time.Now().Add(24*time.Hour))
	for b.Loop() {
		b.StopTimer()
		if out, err := exec.Command("git", "-C", r.bare, "update-ref", "refs/heads/main", r.head).CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
		o := r.options(b, b.TempDir(), time.Now().Add(24*time.Hour))
		rec, cleanup, err := build(context.Background(), o, func(string) string { return "" }, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := rec.Reconcile(context.Background(), reconcile.Options{})
		b.StopTimer()
		cleanup()
		if err != nil || len(res.Issued) != 1000 {
			b.Fatalf("renewed %d, err %v, problems %d", len(res.Issued), err, len(res.Problems))
		}
		reportHeap(b)
		b.StartTimer()
	}
}

// BenchmarkRestore10k: a rebuilt, empty cluster gets 10,000 Secrets back
// from Git alone (certsync restore --create-namespace): decrypting every
// file and applying it, in parallel, with no request to a CA.
func BenchmarkRestore10k(b *testing.B) {
	r := newScaleRepo(b, benchCerts, 0, time.Time{})
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		api := testbed.StartAPIServer(b)
		args := append([]string{"restore", "--create-namespace", "--kubeconfig", api.Kubeconfig, "--cache-dir", filepath.Join(b.TempDir(), "clone")}, r.args...)
		var out, errb bytes.Buffer
		b.StartTimer()
		if code := run(context.Background(), args, func(string) string { return "" }, &out, &errb); code != 0 {
			b.Fatalf("restore exited %d\n%s\n%s", code, out.String(), errb.String())
		}
		b.StopTimer()
		if !strings.Contains(out.String(), fmt.Sprintf("%d applied", benchCerts)) {
			b.Fatalf("restore: %s", out.String())
		}
	}
	reportHeap(b)
}
