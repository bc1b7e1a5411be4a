package main

// BenchmarkIssue9k: one pass ordering every certificate of a repository
// where nothing is issued yet, side by side with a bare lego loop.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/lego"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/registration"

	"github.com/certsync/certsync/gitsrc"
	"github.com/certsync/certsync/internal/benchdata"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/issuer/acme"
	"github.com/certsync/certsync/reconcile"
)

// issueBenchCerts is how many certificates BenchmarkIssue9k orders unless
// CERTSYNC_BENCH_ISSUE says otherwise (e.g. 1000 for a quick run).
const issueBenchCerts = 9_000

// BenchmarkIssue9k: a repository declaring N certificates (default 9,000;
// CERTSYNC_BENCH_ISSUE=N), none issued, and the agent as a user runs it,
// `certsync run --no-apply` with its defaults (concurrency, batches of 50
// pushed at least every 30 s, order claims), ordering them all from the
// in-process Pebble in its first pass; it is stopped (SIGTERM) once the
// remote holds every certificate. CERTSYNC_BENCH_ISSUE_CMD=reconcile
// measures the one-shot `certsync reconcile --no-apply` instead, from
// start to exit. Reported: the time to the last certificate pushed, the
// process's peak resident set (VmHWM, sampled as watchRSS does) and
// largest anonymous resident set, the commits it pushed, and the orders
// Pebble counted, which must be exactly N (an order wasted is a defect,
// and the benchmark fails on it). Then, in the same run and from the same
// Pebble, the yardstick: a bare lego loop ordering N certificates at the
// same concurrency (one lego client and account, a P-256 key per
// certificate as certsync's manifests ask, HTTP-01 answered from one
// token map), and the ratio of the two times. Pebble runs in this
// process, the lego loop too, after certsync: its store is then larger,
// and its newOrder scans every authorization.
//
// CERTSYNC_BENCH_ISSUE_LOG=FILE keeps the process's output (with
// GODEBUG=gctrace=1 in the environment, its heap at every collection).
// CERTSYNC_BENCH_ISSUE_PROFILE=DIR also runs the same pass in this
// process and writes heap profiles into DIR while it runs (heap-NNNs.pb.gz,
// NNN the seconds since the pass started; read one with `go tool pprof
// -sample_index=inuse_space -top`): where the pass's memory goes. Pebble
// runs in this process too; its allocations are under its own packages.
func BenchmarkIssue9k(b *testing.B) {
	n := issueBenchCerts
	if v := os.Getenv("CERTSYNC_BENCH_ISSUE"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("CERTSYNC_BENCH_ISSUE=%q: want a positive number of certificates", v)
		}
	}
	// The agent's own default: both sides order at what a user gets.
	concurrency := defaultOptions(func(string) string { return "" }).Concurrency
	a, port := theACME(b)
	r := newScaleRepo(b, 0, 0, time.Time{})
	declared := declareCertificates(b, r, n)
	bin := buildCertsync(b)
	args := append(append([]string{}, r.args...), "--concurrency", strconv.Itoa(concurrency))

	command := "run"
	if v := os.Getenv("CERTSYNC_BENCH_ISSUE_CMD"); v != "" {
		command = v
	}
	if command != "run" && command != "reconcile" {
		b.Fatalf("CERTSYNC_BENCH_ISSUE_CMD=%q: want run or reconcile", command)
	}
	var certsyncS, legoS, legoRetries, rssMB, anonMB, pushes float64
	for i := 0; i < b.N; i++ {
		resetBranch(b, r.bare, declared)
		before := a.Orders()
		flags := append([]string{"--no-apply", "--cache-dir", filepath.Join(b.TempDir(), "cache")}, args...)
		if command == "run" {
			flags = append(flags, "--listen-addr", "127.0.0.1:0")
		}
		cmd := exec.Command(bin, commandArgs(command, flags...)...)
		// Read only once the child has exited and os/exec has copied
		// all of its output.
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		peak := watchRSS(cmd.Process.Pid)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
		var took time.Duration
		if command == "run" {
			// The agent's first pass is done when every certificate is
			// in the remote; then it is stopped as a user would stop it.
			err = awaitSecrets(b, r.bare, n, exited)
			took = time.Since(start)
			if err == nil {
				cmd.Process.Signal(syscall.SIGTERM)
				err = <-exited
			}
		} else {
			err = <-exited
			took = time.Since(start)
		}
		hwm, anon := peak()
		if file := os.Getenv("CERTSYNC_BENCH_ISSUE_LOG"); file != "" {
			if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if err != nil {
			b.Fatalf("certsync %s: %v\n%s", command, err, tail(out.String(), 4000))
		}
		if ordered := a.Orders() - before; ordered != n {
			b.Fatalf("certsync placed %d orders at the CA for %d certificates\n%s", ordered, n, tail(out.String(), 4000))
		}
		if committed := countSecrets(b, r.bare); committed != n {
			b.Fatalf("%d Secrets committed after the pass, want %d", committed, n)
		}
		certsyncS += took.Seconds()
		rssMB, anonMB = max(rssMB, hwm), max(anonMB, anon)
		pushes += float64(commitsSince(b, r.bare, declared))

		before = a.Orders()
		took, again, err := legoLoop(context.Background(), a, port, n, concurrency)
		if err != nil {
			b.Fatalf("lego loop: %v", err)
		}
		if ordered := a.Orders() - before; ordered != n+again {
			b.Fatalf("the lego loop placed %d orders for %d certificates and %d retries", ordered, n, again)
		}
		legoS += took.Seconds()
		legoRetries += float64(again)
	}
	if dir := os.Getenv("CERTSYNC_BENCH_ISSUE_PROFILE"); dir != "" {
		profileIssuePass(b, r, declared, a, n, concurrency, dir)
	}
	runs := float64(b.N)
	b.ReportMetric(float64(n), "certificates")
	b.ReportMetric(certsyncS/runs, "certsync-s")
	b.ReportMetric(legoS/runs, "lego-s")
	b.ReportMetric(certsyncS/legoS, "ratio")
	b.ReportMetric(rssMB, "MB-peak-RSS")
	b.ReportMetric(anonMB, "MB-RSS-anon")
	b.ReportMetric(pushes/runs, "pushes")
	b.ReportMetric(legoRetries/runs, "lego-retries")
}

// declareCertificates commits n Certificate manifests (one file each,
// spread over 50 namespaces, ECDSA keys, the ClusterIssuer newScaleRepo
// declares) on top of r's branch and returns the new head.
func declareCertificates(b *testing.B, r *scaleRepo, n int) string {
	b.Helper()
	ctx := context.Background()
	repo, snap := cloneScale(b, r)
	changes := make([]gitsrc.Change, 0, n)
	for i := range n {
		path, _, _, manifest := benchdata.Certificate(i, "")
		changes = append(changes, gitsrc.Change{Path: path, Content: manifest})
	}
	head, err := repo.Commit(ctx, snap, changes, fmt.Sprintf("declare %d certificates", n))
	if err != nil {
		b.Fatal(err)
	}
	if err := repo.Push(ctx); err != nil {
		b.Fatal(err)
	}
	return head.Commit()
}

// issueBenchName is the DNS name of certificate i; the lego loop orders
// the same names.
func issueBenchName(i int) string { return benchdata.DNSName(i) }

// resetBranch moves the bare repository's main back to commit.
func resetBranch(b *testing.B, bare, commit string) {
	b.Helper()
	if out, err := exec.Command("git", "-C", bare, "update-ref", "refs/heads/main", commit).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
}

// countSecrets counts the files under secrets/ at the head of main.
func countSecrets(b *testing.B, bare string) int {
	b.Helper()
	out, err := exec.Command("git", "-C", bare, "ls-tree", "-r", "--name-only", "main", "secrets/").Output()
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Count(out, []byte("\n"))
}

// commitsSince counts the commits on main after commit: one per push.
func commitsSince(b *testing.B, bare, commit string) int {
	b.Helper()
	out, err := exec.Command("git", "-C", bare, "rev-list", "--count", commit+"..main").Output()
	if err != nil {
		b.Fatal(err)
	}
	c, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// awaitSecrets polls the remote until it holds n Secrets; it fails if
// the agent exits first.
func awaitSecrets(b *testing.B, bare string, n int, exited <-chan error) error {
	b.Helper()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("the agent exited before its pass pushed %d certificates: %v", n, err)
		case <-tick.C:
		}
		if countSecrets(b, bare) >= n {
			return nil
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// legoUser is the lego loop's account.
type legoUser struct {
	key crypto.PrivateKey
	reg *registration.Resource
}

func (u *legoUser) GetEmail() string                        { return "" }
func (u *legoUser) GetRegistration() *registration.Resource { return u.reg }
func (u *legoUser) GetPrivateKey() crypto.PrivateKey        { return u.key }

// legoLoop orders n certificates from a with lego alone, concurrency at a
// time, answering HTTP-01 on 127.0.0.1:port (where Pebble's VA looks), and
// returns how long the orders took and how many it ordered again after
// lego gave up waiting (each costs one more order at the CA). The account is registered before the
// clock starts; certsync registers its own inside its timing, once, which
// costs milliseconds.
func legoLoop(ctx context.Context, a *testbed.ACME, port, n, concurrency int) (took time.Duration, retries int, err error) {
	legolog.Logger = stdlog.New(io.Discard, "", 0)
	accountKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, 0, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(a.ServerCAPEM)
	user := &legoUser{key: accountKey}
	cfg := lego.NewConfig(user)
	cfg.CADirURL = a.DirectoryURL
	cfg.HTTPClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		MaxIdleConnsPerHost: concurrency}}
	client, err := lego.NewClient(cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("lego client: %w", err)
	}
	// One token map for every order: lego's own HTTP-01 server opens a
	// listener per challenge, which concurrent orders cannot share.
	solver := acme.NewHTTP01Solver(nil)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return 0, 0, fmt.Errorf("HTTP-01 listener: %w", err)
	}
	srv := &http.Server{Handler: solver, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	client.Challenge.Remove(challenge.TLSALPN01)
	client.Challenge.Remove(challenge.DNS01)
	if err := client.Challenge.SetHTTP01Provider(solver); err != nil {
		return 0, 0, err
	}
	if user.reg, err = client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		return 0, 0, fmt.Errorf("register: %w", err)
	}

	start := time.Now()
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	var retried atomic.Int32
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			for try := 0; err == nil && try < 2; try++ {
				// Under load Pebble can be slow enough for lego to give
				// up waiting on an order; a script would order again.
				if _, err = client.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{issueBenchName(i)}, PrivateKey: key, Bundle: true}); err == nil {
					break
				}
				if try == 0 {
					retried.Add(1)
					err = nil
				}
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", issueBenchName(i), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took = time.Since(start)
	if len(errs) > 0 {
		return took, int(retried.Load()), fmt.Errorf("%d of %d orders failed twice, first: %w", len(errs), n, errs[0])
	}
	return took, int(retried.Load()), ctx.Err()
}

// profileIssuePass runs the same pass in this process (the agent's own
// code, built as `certsync reconcile` builds it) and writes a heap profile
// into dir every few seconds while it orders.
func profileIssuePass(b *testing.B, r *scaleRepo, declared string, a *testbed.ACME, n, concurrency int, dir string) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	resetBranch(b, r.bare, declared)
	o := r.options(b, b.TempDir(), time.Now())
	o.Concurrency = concurrency
	o.clock = time.Now
	rec, cleanup, err := build(context.Background(), o, func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer cleanup()
	done := make(chan struct{})
	var written atomic.Int32
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			// A collection first: the profile shows what is live now,
			// not as of the last cycle.
			runtime.GC()
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%03ds.pb.gz", int(time.Since(start).Seconds()))))
			if err != nil {
				b.Error(err)
				return
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				b.Error(err)
			}
			f.Close()
			written.Add(1)
		}
	}()
	before := a.Orders()
	res, err := rec.Reconcile(context.Background(), reconcile.Options{})
	close(done)
	wg.Wait()
	if err != nil || len(res.Issued) != n || a.Orders()-before != n {
		b.Fatalf("profiled pass: issued %d, orders %d, err %v, problems %d", len(res.Issued), a.Orders()-before, err, len(res.Problems))
	}
	b.Logf("profiled pass: %d certificates in %s, %d heap profiles in %s", n, time.Since(start).Round(time.Millisecond), written.Load(), dir)
}
