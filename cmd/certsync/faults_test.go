package main

// The fault matrix: certsync is killed, stopped or cut off at each step of
// a pass (mid-order, after the local commit, after the push, mid-apply),
// its Git server hangs or goes away while a person commits, the CA fails,
// the API server goes away, and five agents start at once. After each, a
// plain rerun must leave: orders counted at Pebble ≤ certificates due +
// orders in flight at the fault, one ACME account, no commit lost, a
// linear history, every certificate committed, and the cluster equal to
// Git. Kills are real: certsync runs as a child process (this test binary
// re-executed as the command) and gets SIGKILL or SIGTERM.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
)

// faultConcurrency bounds the orders in flight at any fault.
const faultConcurrency = 4

// faultBed is a bed whose repository declares n HTTP-01 certificates in
// namespace shop (and nothing else), with an API server.
type faultBed struct {
	*bed
	api   *testbed.APIServer
	kc    kubernetes.Interface
	paths []string // the Secret files the certificates are committed to
	// orders and accounts are the CA's counters when the bed was made.
	orders, accounts int
}

func newFaultBed(t *testing.T, n int, dnsZone bool) *faultBed {
	t.Helper()
	b := newBed(t, nil)
	var paths []string
	b.edit(t, fmt.Sprintf("%d certificates", n), func(dir string) {
		for _, f := range []string{"certificates/shop/wildcard.yaml", "certificates/shop/checkout.yaml", "certificates/api/api.yaml"} {
			if err := os.Remove(filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			host := fmt.Sprintf("f%02d.shop.test", i)
			if dnsZone { // selected for DNS-01 (rfc2136) by the issuer's zone
				host = fmt.Sprintf("f%02d.example.com", i)
			}
			writeFile(t, filepath.Join(dir, fmt.Sprintf("certificates/shop/f%02d.yaml", i)), fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: f%02d, namespace: shop}
spec:
  secretName: f%02d-tls
  dnsNames: [%s]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: letsencrypt-staging, kind: ClusterIssuer}
`, i, i, host))
			paths = append(paths, committed.SecretPath("default", "shop", fmt.Sprintf("f%02d-tls", i)))
		}
	})
	api := b.withCluster(t)
	b.args = append(b.args, "--concurrency", fmt.Sprint(faultConcurrency))
	return &faultBed{bed: b, api: api, kc: kube(t, api), paths: paths, orders: b.acme.Orders(), accounts: b.acme.Accounts()}
}

// child is certsync running as a separate process.
type child struct {
	cmd  *exec.Cmd
	out  testbed.Output
	done chan struct{}
	code int
}

// start runs `certsync reconcile` with the bed's flags as a child process.
func (b *bed) start(t *testing.T, extra ...string) *child {
	t.Helper()
	c := &child{done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], append([]string{"reconcile"}, append(append([]string{}, b.args...), extra...)...)...)
	c.cmd.Env = append(os.Environ(), "CERTSYNC_TEST_MAIN=1")
	for k, v := range b.env {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		c.cmd.Wait()
		c.code = c.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() { c.signal(syscall.SIGKILL); <-c.done })
	return c
}

// childRef hands a child to hooks that run on other goroutines.
type childRef struct{ p atomic.Pointer[child] }

func (r *childRef) signal(sig syscall.Signal) {
	if c := r.p.Load(); c != nil {
		c.signal(sig)
	}
}

func (c *child) signal(sig syscall.Signal) {
	select {
	case <-c.done:
	default:
		c.cmd.Process.Signal(sig)
	}
}

// wait waits for the child to exit and returns its status.
func (c *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
		return c.code
	case <-time.After(3 * time.Minute):
		t.Fatalf("certsync did not exit\n%s", c.out.String())
		return -1
	}
}

// rerun is the operator's answer to any fault: run certsync again. It
// must succeed.
func (f *faultBed) rerun(t *testing.T) {
	t.Helper()
	c := f.start(t)
	if code := c.wait(t); code != 0 {
		t.Fatalf("the rerun exited %d\n%s", code, c.out.String())
	}
}

// healthy asserts the invariants of the matrix after a fault and a rerun:
// orders ≤ due + inFlight, one account, the given commits still in the
// branch, linear history, every certificate committed, no claim left,
// and the cluster equal to Git.
func (f *faultBed) healthy(t *testing.T, fault string, inFlight int, keep ...string) {
	t.Helper()
	orders := f.acme.Orders() - f.orders
	t.Logf("%s: %d certificates due, %d orders spent (bound %d)", fault, len(f.paths), orders, len(f.paths)+inFlight)
	if orders > len(f.paths)+inFlight {
		t.Errorf("%s: %d orders for %d certificates (at most %d in flight at the fault)", fault, orders, len(f.paths), inFlight)
	}
	if n := f.acme.Accounts() - f.accounts; n != 1 {
		t.Errorf("%s: %d ACME accounts registered, want 1", fault, n)
	}
	for _, c := range keep {
		if err := exec.Command(testbed.Git(t), "-C", f.bare, "merge-base", "--is-ancestor", c, "main").Run(); err != nil {
			t.Errorf("%s: commit %s was lost from main", fault, c)
		}
	}
	if merges := strings.TrimSpace(gitCmd(t, f.bare, "rev-list", "--merges", "main")); merges != "" {
		t.Errorf("%s: history is not linear: merges %s", fault, merges)
	}
	if claims := strings.TrimSpace(gitCmd(t, f.bare, "ls-tree", "--name-only", "main", committed.ClaimsDir)); claims != "" {
		t.Errorf("%s: order claims left behind: %s", fault, claims)
	}
	accounts := strings.Fields(gitCmd(t, f.bare, "ls-tree", "-r", "--name-only", "main", committed.AccountsDir))
	if len(accounts) != 1 {
		t.Errorf("%s: account key files %v, want one", fault, accounts)
	}
	for _, p := range f.paths {
		want := f.sopsDecrypt(t, p)
		live, err := f.kc.CoreV1().Secrets(want.Namespace).Get(context.Background(), want.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s: %s committed but not in the cluster: %v", fault, p, err)
			continue
		}
		if !equalData(live.Data, want.Data) {
			t.Errorf("%s: cluster Secret %s/%s differs from Git", fault, want.Namespace, want.Name)
		}
	}
	assertNoKeyMaterial(t, f.bare)
}

// gitTap sits in front of the Git server and calls onPush for every push
// (n counts from 1) with a function that forwards it: the test can act
// before the push reaches the server, or after.
type gitTap struct {
	proxy  http.Handler
	pushes atomic.Int32
	onPush func(n int32, forward func())
}

func (f *faultBed) tapGit(t *testing.T, onPush func(n int32, forward func())) {
	t.Helper()
	target, err := url.Parse(f.git.URL("certs"))
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	tap := &gitTap{proxy: httputil.NewSingleHostReverseProxy(target), onPush: onPush}
	srv := httptest.NewServer(tap)
	t.Cleanup(srv.Close)
	for i := range f.args {
		if f.args[i] == "--repo" {
			f.args[i+1] = srv.URL + "/certs.git"
		}
	}
}

func (g *gitTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
		g.onPush(g.pushes.Add(1), func() { g.proxy.ServeHTTP(w, r) })
		return
	}
	g.proxy.ServeHTTP(w, r)
}

// atFinalize calls fn once, when the CA receives the n-th finalize
// request: that order is in flight, its certificate about to be issued.
func (f *faultBed) atFinalize(t *testing.T, n int32, fn func()) {
	var seen atomic.Int32
	f.acme.SetHook(func(r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/finalize-order/") && seen.Add(1) == n {
			fn()
		}
	})
	t.Cleanup(func() { f.acme.SetHook(nil) })
}

// signalAtFinalize starts certsync and sends it sig when the CA receives
// the n-th finalize request.
func (f *faultBed) signalAtFinalize(t *testing.T, n int32, sig syscall.Signal) *child {
	var ref childRef
	f.atFinalize(t, n, func() { ref.signal(sig) })
	c := f.start(t)
	ref.p.Store(c)
	return c
}

func TestFaultKillMidOrder(t *testing.T) {
	f := newFaultBed(t, 10, false)
	c := f.signalAtFinalize(t, 5, syscall.SIGKILL)
	c.wait(t)
	f.acme.SetHook(nil)
	f.rerun(t)
	f.healthy(t, "kill -9 mid-order", faultConcurrency)
}

func TestFaultKillAfterLocalCommit(t *testing.T) {
	f := newFaultBed(t, 10, false)
	var ref childRef
	// Pushes: 1 the claim, 2 the account key, 3 the first batch, 4 the
	// second: killed before it reaches the server, committed locally.
	f.tapGit(t, func(n int32, forward func()) {
		if n == 4 {
			ref.signal(syscall.SIGKILL)
			return
		}
		forward()
	})
	c := f.start(t, "--batch-size", "3")
	ref.p.Store(c)
	c.wait(t)
	f.rerun(t)
	f.healthy(t, "kill -9 after the local commit", faultConcurrency)
}

func TestFaultKillAfterPush(t *testing.T) {
	f := newFaultBed(t, 10, false)
	var ref childRef
	pushed := make(chan string, 1)
	// The second batch reaches the server; certsync dies before it hears
	// so, and before it applies the batch.
	f.tapGit(t, func(n int32, forward func()) {
		forward()
		if n == 4 {
			pushed <- f.head(t)
			ref.signal(syscall.SIGKILL)
		}
	})
	c := f.start(t, "--batch-size", "3")
	ref.p.Store(c)
	c.wait(t)
	f.rerun(t)
	f.healthy(t, "kill -9 after the push", faultConcurrency, <-pushed)
}

func TestFaultKillMidApply(t *testing.T) {
	f := newFaultBed(t, 10, false)
	c := f.start(t, "--batch-size", "2")
	eventually(t, "the first Secret applied", &c.out, func() bool {
		list, err := f.kc.CoreV1().Secrets("shop").List(context.Background(), metav1.ListOptions{LabelSelector: committed.ManagedByLabel})
		return err == nil && len(list.Items) > 0
	})
	pushed := f.head(t)
	c.signal(syscall.SIGKILL)
	c.wait(t)
	f.rerun(t)
	f.healthy(t, "kill -9 mid-apply", faultConcurrency, pushed)
}

// SIGTERM is not a crash: orders in flight finish and are pushed, no
// new one starts, nothing is held back, and nothing is ordered twice.
func TestFaultSIGTERMMidOrder(t *testing.T) {
	f := newFaultBed(t, 10, false)
	c := f.signalAtFinalize(t, 3, syscall.SIGTERM)
	c.wait(t)
	f.acme.SetHook(nil)
	if strings.Contains(c.out.String(), "order failed") {
		t.Errorf("shutdown recorded as an order failure:\n%s", c.out.String())
	}
	f.rerun(t)
	f.healthy(t, "SIGTERM mid-order", 0)
}

// A Git server that accepts connections and never answers: the pass
// ends with an error naming the timeout, having ordered nothing.
func TestFaultGitHangs(t *testing.T) {
	f := newFaultBed(t, 2, false)
	silent := testbed.StartSilentServer(t)
	c := f.start(t, "--repo", "http://"+silent.Addr+"/certs.git", "--git-timeout", "2s", "--cache-dir", filepath.Join(f.dir, "silent-clone"))
	if code := c.wait(t); code == 0 || !strings.Contains(c.out.String(), "no answer within 2s") {
		t.Fatalf("a hanging Git server must fail the pass with a timeout (exit %d)\n%s", code, c.out.String())
	}
	if f.acme.Orders() != f.orders {
		t.Fatalf("ordered while Git was unreachable")
	}
	f.rerun(t)
	f.healthy(t, "Git hangs", 0)
}

// Git goes away after the claim and the account key are pushed, while
// a person commits; when it is back, the certificates ordered meanwhile
// are committed on top of the person's commit, none ordered again.
func TestFaultGitDownAtPushWhileAUserCommits(t *testing.T) {
	f := newFaultBed(t, 6, false)
	f.git.FailPushesAfter(2)
	c := f.start(t)
	if code := c.wait(t); code == 0 || !strings.Contains(c.out.String(), "kept locally") {
		t.Fatalf("a failed push must fail the pass and say the commit is kept (exit %d)\n%s", code, c.out.String())
	}
	f.git.SetPushDown(false)
	f.edit(t, "a person's change", func(dir string) {
		writeFile(t, filepath.Join(dir, "NOTES.md"), "edited while certsync could not push\n")
	})
	human := f.head(t)
	ordered := f.acme.Orders()
	f.rerun(t)
	if f.acme.Orders() != ordered {
		t.Errorf("the rerun ordered %d certificates again", f.acme.Orders()-ordered)
	}
	f.healthy(t, "Git down at push while a user commits", 0, human)
}

// The CA answers 500 and then 429 with Retry-After; passes in between
// order nothing that is backing off, and once the CA is back every
// certificate is issued with no order wasted.
func TestFaultACMEErrorsThenBack(t *testing.T) {
	f := newFaultBed(t, 4, false)
	now := time.Now()
	f.acme.Fail(1, http.StatusInternalServerError, "urn:ietf:params:acme:error:serverInternal", 0)
	f.acme.Fail(1, http.StatusTooManyRequests, "urn:ietf:params:acme:error:rateLimited", 2*time.Hour)
	res, _ := f.pass(t, now)
	if res == nil || res.Failed != 2 || len(res.Issued) != 2 {
		t.Fatalf("want 2 issued and 2 failed, got %+v", res)
	}
	// One hour later the 500 is retried (cert-manager's first backoff
	// step), the 429 still waits for its Retry-After.
	res = f.mustPass(t, now.Add(time.Hour+time.Minute))
	if len(res.Issued) != 1 || res.Plan.Count("Wait") != 1 {
		t.Fatalf("after 1h: issued %d, waiting %d; want 1 and 1", len(res.Issued), res.Plan.Count("Wait"))
	}
	res = f.mustPass(t, now.Add(2*time.Hour+time.Minute))
	if len(res.Issued) != 1 {
		t.Fatalf("after Retry-After: issued %d, want 1", len(res.Issued))
	}
	f.healthy(t, "ACME 500 and 429, then back", 0)
}

// The API server goes away in the middle of applying: Git is complete,
// the pass reports what it could not apply, and the rerun applies it
// with no order.
func TestFaultAPIServerCutMidApply(t *testing.T) {
	f := newFaultBed(t, 8, false)
	cut := f.proxyAPIServer(t)
	// Cut when the CA finalizes the 7th order: the first batches are
	// applied, the last ones cannot be.
	f.atFinalize(t, 7, func() { cut(true) })
	c := f.start(t, "--batch-size", "2", "--concurrency", "1")
	if code := c.wait(t); code == 0 || !strings.Contains(c.out.String(), "apply") {
		t.Errorf("a pass that could not apply must say so and exit non-zero (exit %d)\n%s", code, c.out.String())
	}
	ordered := f.acme.Orders()
	cut(false)
	f.rerun(t)
	if f.acme.Orders() != ordered {
		t.Errorf("the rerun ordered %d certificates", f.acme.Orders()-ordered)
	}
	f.healthy(t, "API server cut mid-apply", 0)
}

// proxyAPIServer points the bed's kubeconfig at a TCP proxy in front of
// the API server; cut(true) drops every connection and refuses new ones.
func (f *faultBed) proxyAPIServer(t *testing.T) (cut func(bool)) {
	t.Helper()
	target := strings.TrimSuffix(strings.TrimPrefix(f.api.Config.Host, "https://"), "/")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var (
		mu    sync.Mutex
		down  bool
		conns []net.Conn
	)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if down {
				mu.Unlock()
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				mu.Unlock()
				in.Close()
				continue
			}
			conns = append(conns, in, out)
			mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	kubeconfig, err := os.ReadFile(f.api.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	proxied := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, proxied, strings.ReplaceAll(string(kubeconfig), target, ln.Addr().String()))
	for i := range f.args {
		if f.args[i] == "--kubeconfig" {
			f.args[i+1] = proxied
		}
	}
	return func(d bool) {
		mu.Lock()
		defer mu.Unlock()
		down = d
		if d {
			for _, c := range conns {
				c.Close()
			}
			conns = nil
		}
	}
}

// Five agents start at once on the same due certificates, each with its
// own clone: every certificate is ordered once, under one account.
func TestFaultFiveAgents(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dns01 bool
		extra []string
	}{
		{name: "HTTP-01", extra: nil},
		// Small chunks, so the agents share the work between them.
		{name: "DNS-01", dns01: true, extra: []string{"--batch-size", "4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFaultBed(t, 20, tc.dns01)
			var wg sync.WaitGroup
			logs := make([]bytes.Buffer, 5)
			codes := make([]int, 5)
			for i := range 5 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					args := append([]string{"reconcile"}, f.args...)
					args = append(args, "--cache-dir", filepath.Join(f.dir, fmt.Sprintf("agent-%d", i)))
					args = append(args, tc.extra...)
					codes[i] = run(context.Background(), args, func(k string) string { return f.env[k] }, io.Discard, &logs[i])
				}()
			}
			wg.Wait()
			for i, code := range codes {
				if code != 0 {
					t.Errorf("agent %d exited %d\n%s", i, code, logs[i].String())
				}
			}
			f.healthy(t, "5 agents, "+tc.name, 0)
		})
	}
}
