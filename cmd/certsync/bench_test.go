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
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/spf13/cobra"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/encrypt"
	"github.com/certsync/certsync/gitsrc"
	"github.com/certsync/certsync/internal/benchdata"
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
		src, ns, _, manifest := benchdata.Certificate(i, "")
		changes = append(changes, gitsrc.Change{Path: src, Content: manifest})
		set := declared.ParseFile(declared.File{Path: src, Content: manifest})
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
		s, err := render.TLSSecret(render.TLS{Certificate: c, Issued: &issuer.Certificate{ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Leaf: leaf}, KeyPEM: keyPEM, IssuedAt: now, Reason: "bench"})
		if err != nil {
			b.Fatal(err)
		}
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
	o := defaultOptions(func(string) string { return "" })
	cmd := &cobra.Command{}
	addAgentFlags(cmd, &o)
	addLogFlags(cmd.Flags(), &o)
	if err := cmd.Flags().Parse(append(append([]string{}, r.args...), "--cache-dir", cacheDir)); err != nil {
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
	// The agent of the warm passes verifies every file at its first pass,
	// so the cache folder the cold passes and processes start from holds
	// every file verified, as an agent's does after its first passes.
	all := *o
	all.VerifyPerPass = -1
	rec, cleanup, err := build(context.Background(), &all, func(string) string { return "" }, slog.New(slog.DiscardHandler))
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
	pass() // fill the parse cache and the verification store
	// cold builds a new Reconciler each time, as a new process would,
	// on the cache folder the passes before it used (label pass=cold).
	b.Run("cold", func(b *testing.B) {
		pprof.Do(context.Background(), pprof.Labels("pass", "cold"), func(context.Context) {
			for b.Loop() {
				rec2, cleanup2, err := build(context.Background(), o, func(string) string { return "" }, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				if res, err := rec2.Reconcile(context.Background(), reconcile.Options{}); err != nil || res.Plan.HasChanges() || res.Decrypted > 0 {
					b.Fatalf("pass: %v changes=%v decrypted=%d", err, res.Plan.HasChanges(), res.Decrypted)
				}
				cleanup2()
			}
		})
	})
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			pass()
		}
		reportHeap(b)
	})
	// The agent's idle pass with its cluster holding the 10,000 Secrets
	// (restored from Git first, as after a rebuild): after the first pass
	// the cluster is read from the daemon's watch, data only for what
	// moved.
	b.Run("warm-cluster", func(b *testing.B) {
		api, stop := startScopedAPIServer(b)
		defer stop()
		var out, errb bytes.Buffer
		args := commandArgs("restore", append([]string{"--create-namespace", "--kubeconfig", api.Kubeconfig, "--cache-dir", filepath.Join(b.TempDir(), "restore")}, r.args...)...)
		if code := run(context.Background(), args, func(string) string { return "" }, &out, &errb); code != 0 {
			b.Fatalf("restore: exit %d: %s", code, errb.String())
		}
		withCluster := *o
		withCluster.Kubeconfig = api.Kubeconfig
		withCluster.watchCluster = true // as certsync run: a watch between passes
		rec, cleanup, err := build(context.Background(), &withCluster, func(string) string { return "" }, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		defer cleanup()
		clusterPass := func() {
			res, err := rec.Reconcile(context.Background(), reconcile.Options{})
			if err != nil || res.Plan.HasChanges() || len(res.Problems) > 0 || len(res.Applied) > 0 {
				b.Fatalf("pass: %v changes=%v applied=%d problems=%v", err, res.Plan.HasChanges(), len(res.Applied), res.Problems)
			}
		}
		start := time.Now()
		clusterPass() // the agent's first pass lists the Secrets in full
		first := time.Since(start)
		// The idle passes carry a profiler label: go tool pprof
		// -tagfocus=pass=idle shows them without the set-up and first pass.
		pprof.Do(context.Background(), pprof.Labels("pass", "idle"), func(context.Context) {
			for b.Loop() {
				clusterPass()
			}
		})
		b.ReportMetric(first.Seconds(), "s-first-pass")
		reportHeap(b)
	})
	// process: a one-shot `certsync reconcile --no-apply` on the warm
	// cache folder; its peak RSS is sampled (VmHWM, see BenchmarkRestore10k:
	// rusage counts this process's RSS too) and its CPU seconds reported,
	// as the machine may be shared.
	b.Run("process", func(b *testing.B) {
		bin := buildCertsync(b)
		benchOneShot(b, bin, append([]string{"reconcile", "--no-apply", "--cache-dir", cache}, r.args...))
	})
	// process-cluster: the same one-shot reconcile applying to a cluster
	// that holds the 10,000 Secrets (restored first), after a first run
	// on that cluster: it lists their metadata (a new process has no
	// watch; it starts from what the last run saw) and finds nothing to do.
	b.Run("process-cluster", func(b *testing.B) {
		bin := buildCertsync(b)
		api, stop := startScopedAPIServer(b)
		defer stop()
		restoreInto(b, r, api)
		args := append([]string{"reconcile", "--kubeconfig", api.Kubeconfig, "--cache-dir", cache}, r.args...)
		// A warm cache folder is one a run has used with this cluster
		// before: it holds what that run saw of the cluster.
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			b.Fatalf("first run: %v %s", err, out)
		}
		benchOneShot(b, bin, args)
	})
	// The agent: `certsync run` passing every second over the same
	// repository; its resident memory between passes once it has done a
	// few, with the breakdown (see benchDaemon). daemon-cluster: the same
	// agent applying to a cluster that holds the 10,000 Secrets (restored
	// first), reading it through its watch.
	b.Run("daemon", func(b *testing.B) {
		bin := buildCertsync(b)
		for b.Loop() {
			benchDaemon(b, bin, append([]string{"run", "--no-apply", "--cache-dir", cache, "--interval", "1s"}, r.args...))
		}
	})
	b.Run("daemon-cluster", func(b *testing.B) {
		bin := buildCertsync(b)
		api, stop := startScopedAPIServer(b)
		defer stop()
		restoreInto(b, r, api)
		for b.Loop() {
			benchDaemon(b, bin, append([]string{"run", "--kubeconfig", api.Kubeconfig, "--cache-dir", cache, "--interval", "1s"}, r.args...))
		}
	})
}

// restoreInto restores r's Secrets into api, as after a rebuild.
func restoreInto(b *testing.B, r *scaleRepo, api *testbed.APIServer) {
	b.Helper()
	var out, errb bytes.Buffer
	args := commandArgs("restore", append([]string{"--create-namespace", "--kubeconfig", api.Kubeconfig, "--cache-dir", filepath.Join(b.TempDir(), "restore")}, r.args...)...)
	if code := run(context.Background(), args, func(string) string { return "" }, &out, &errb); code != 0 {
		b.Fatalf("restore: exit %d: %s", code, errb.String())
	}
}

// benchOneShot runs the certsync command args once per iteration and
// reports its wall time (the benchmark's own), its peak RSS (sampled
// VmHWM, see BenchmarkRestore10k: rusage counts this process's RSS too)
// and its CPU seconds, as the machine may be shared.
func benchOneShot(b *testing.B, bin string, args []string) {
	b.Helper()
	var rss, cpu float64
	for b.Loop() {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+os.Getenv("BENCH_GOMEMLIMIT"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		peak := watchRSS(cmd.Process.Pid)
		if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "up to date") {
			b.Fatalf("%v %s", err, out.String())
		}
		hwm, _ := peak()
		rss = max(rss, hwm)
		cpu += cmd.ProcessState.UserTime().Seconds() + cmd.ProcessState.SystemTime().Seconds()
	}
	b.ReportMetric(rss, "MB-peak-RSS")
	b.ReportMetric(cpu/float64(b.N), "cpu-s")
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
// from Git alone, side by side with the yardstick a user would otherwise
// reach for. Each iteration starts a fresh API server and times
// `certsync restore --create-namespace` (a child process: its wall time
// from start to exit, clone and decryption included, and its peak RSS);
// then another fresh API server and times `kubectl apply --server-side -f
// DIR` of the same Secrets already decrypted to plaintext YAML (decrypted
// once, outside the timing), one file per Secret as in the repository plus
// a first file with the 50 Namespaces, since certsync creates them too.
// Reported: both times, their ratio (certsync/kubectl; the goal is at most
// 1/3), certsync's peak RSS (goal: under 150 MB; MB-RSS-anon is the part
// that is not the binary's own pages) and the CPU seconds each side and the
// API server (kube-apiserver plus etcd) spent, which on a 2-core machine
// compete for the same cores. kubectl comes from `make bench`
// (hack/build-tools.sh bench).
//
// The peak RSS is the child's own VmHWM, sampled: the rusage Maxrss of a
// child started by os/exec is no use here, as Linux counts in it the
// parent's RSS at the time of the exec (os/exec starts children with
// CLONE_VM), and this benchmark's process is larger than certsync.
func BenchmarkRestore10k(b *testing.B) {
	kubectl, err := testbed.ToolPath("kubectl")
	if err != nil {
		b.Fatalf("kubectl is the yardstick of this benchmark and is not built: run `make bench` (hack/build-tools.sh bench builds it): %v", err)
	}
	r := newScaleRepo(b, benchCerts, 0, time.Time{})
	plainDir := writePlainSecrets(b, r)
	// The real binary: the test binary's own code pages would count in
	// its resident memory.
	bin := buildCertsync(b)
	var certsyncS, kubectlS, rssMB, anonMB, certsyncCPU, certsyncServerCPU, kubectlCPU, kubectlServerCPU float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		func() {
			api, stop := startScopedAPIServer(b)
			defer stop()
			args := commandArgs("restore", append([]string{"--create-namespace", "--kubeconfig", api.Kubeconfig, "--cache-dir", filepath.Join(b.TempDir(), "clone")}, r.args...)...)
			cmd := exec.Command(bin, args...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			server := serverCPU(b)
			b.StartTimer()
			start := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			peak := watchRSS(cmd.Process.Pid)
			err := cmd.Wait()
			took := time.Since(start)
			b.StopTimer()
			hwm, anon := peak()
			if err != nil || !strings.Contains(out.String(), fmt.Sprintf("%d applied", benchCerts)) {
				b.Fatalf("certsync restore: %v\n%s\n%s", err, out.String(), errb.String())
			}
			certsyncS += took.Seconds()
			certsyncServerCPU += serverCPU(b) - server
			certsyncCPU += cmd.ProcessState.UserTime().Seconds() + cmd.ProcessState.SystemTime().Seconds()
			rssMB, anonMB = max(rssMB, hwm), max(anonMB, anon)
		}()
		func() {
			api, stop := startScopedAPIServer(b)
			defer stop()
			cmd := exec.Command(kubectl, "apply", "--server-side", "--kubeconfig", api.Kubeconfig, "-f", plainDir)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			server := serverCPU(b)
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			if n := strings.Count(out.String(), "serverside-applied"); err != nil || n != benchCerts+benchNamespaces {
				b.Fatalf("kubectl apply --server-side: %v (%d objects applied)\n%s", err, n, errb.String())
			}
			kubectlS += took.Seconds()
			kubectlServerCPU += serverCPU(b) - server
			kubectlCPU += cmd.ProcessState.UserTime().Seconds() + cmd.ProcessState.SystemTime().Seconds()
		}()
	}
	n := float64(b.N)
	b.ReportMetric(certsyncS/n, "certsync-s")
	b.ReportMetric(kubectlS/n, "kubectl-s")
	b.ReportMetric(certsyncS/kubectlS, "ratio")
	b.ReportMetric(rssMB, "MB-RSS")
	b.ReportMetric(anonMB, "MB-RSS-anon")
	b.ReportMetric(certsyncCPU/n, "certsync-cpu-s")
	b.ReportMetric(certsyncServerCPU/n, "server-cpu-s-certsync")
	b.ReportMetric(kubectlCPU/n, "kubectl-cpu-s")
	b.ReportMetric(kubectlServerCPU/n, "server-cpu-s-kubectl")
}

// buildCertsync builds the certsync command into a temporary folder.
func buildCertsync(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "certsync")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	// Written to disk before it runs, as a binary installed from an image
	// is: the pages of a file just written stay dirty for up to 30 s, and
	// the agent cannot hand dirty pages back (see settle), so a
	// benchmark run in that window counted some 15 MB of the binary that
	// no deployed agent holds.
	f, err := os.Open(bin)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	return bin
}

// benchNamespaces is how many namespaces newScaleRepo spreads its
// certificates over.
const benchNamespaces = benchdata.Namespaces

// cloneScale clones r into a new cache folder and returns its head.
func cloneScale(b *testing.B, r *scaleRepo) (*gitsrc.Repo, *gitsrc.Snapshot) {
	b.Helper()
	repo, err := gitsrc.Open(context.Background(), gitsrc.Options{URL: r.bare, Branch: "main", Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	snap, err := repo.Fetch(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return repo, snap
}

// writePlainSecrets decrypts every Secret committed in r into a directory
// for kubectl: 00-namespaces.yaml (the Namespaces, first, as kubectl
// applies files in name order), then one file per Secret.
func writePlainSecrets(b *testing.B, r *scaleRepo) string {
	b.Helper()
	ctx := context.Background()
	_, snap := cloneScale(b, r)
	key, err := os.ReadFile(r.keyFile)
	if err != nil {
		b.Fatal(err)
	}
	sopsConfig, err := snap.ReadFile(".sops.yaml")
	if err != nil {
		b.Fatal(err)
	}
	dec, err := encrypt.New(encrypt.Config{SOPSConfig: sopsConfig, AgeIdentities: key})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	var nsYAML strings.Builder
	for i := range benchNamespaces {
		fmt.Fprintf(&nsYAML, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns%d\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "00-namespaces.yaml"), []byte(nsYAML.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	secrets := 0
	for _, p := range snap.Paths() {
		_, ns, name, ok := committed.ParseSecretPath(p)
		if !ok {
			continue
		}
		content, err := snap.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		plain, err := dec.Decrypt(ctx, p, content)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ns+"."+name+".yaml"), plain, 0o600); err != nil {
			b.Fatal(err)
		}
		secrets++
	}
	if secrets != benchCerts {
		b.Fatalf("decrypted %d Secrets, want %d", secrets, benchCerts)
	}
	return dir
}

// scopedTB is a benchmark whose cleanups run when stop is called, so one
// API server is gone before the next one starts.
type scopedTB struct {
	*testing.B
	cleanups []func()
}

func (s *scopedTB) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

func startScopedAPIServer(b *testing.B) (*testbed.APIServer, func()) {
	s := &scopedTB{B: b}
	stop := func() {
		for i := len(s.cleanups) - 1; i >= 0; i-- {
			s.cleanups[i]()
		}
	}
	ok := false
	defer func() {
		if !ok {
			stop()
		}
	}()
	api := testbed.StartAPIServer(s)
	ok = true
	return api, stop
}

// serverCPU is the CPU time, in seconds, used so far by the API servers
// (kube-apiserver and etcd) this benchmark started: children of this
// process.
func serverCPU(b *testing.B) float64 {
	b.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	self := os.Getpid()
	var ticks float64
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // not a process, or gone
		}
		// pid (comm) state ppid … utime stime are fields 4, 14 and 15.
		end := bytes.LastIndexByte(stat, ')')
		if end < 0 {
			continue
		}
		comm := string(stat[bytes.IndexByte(stat, '(')+1 : end])
		f := strings.Fields(string(stat[end+1:]))
		if len(f) < 13 || (comm != "kube-apiserver" && comm != "etcd") {
			continue
		}
		var ppid int
		var utime, stime float64
		fmt.Sscan(f[1], &ppid)
		fmt.Sscan(f[11], &utime)
		fmt.Sscan(f[12], &stime)
		if ppid == self {
			ticks += utime + stime
		}
	}
	return ticks / 100 // USER_HZ
}

// watchRSS samples the peak resident set (VmHWM) and the largest anonymous
// resident set (RssAnon) of process pid until it exits; peak returns them
// in MB once the process has been waited for.
func watchRSS(pid int) (peak func() (hwm, anon float64)) {
	done := make(chan struct{})
	var hwm, anon float64
	go func() {
		defer close(done)
		for {
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				return // reaped
			}
			h, a := procKB(status, "VmHWM:"), procKB(status, "RssAnon:")
			if h == 0 {
				return // exited: a zombie has no memory left
			}
			hwm, anon = max(hwm, h), max(anon, a)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() (float64, float64) {
		<-done
		return hwm / 1024, anon / 1024
	}
}
