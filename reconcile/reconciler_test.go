package reconcile

// Unit tests of the runner's control flow with in-memory effects. The
// end-to-end proof against real Git, Pebble, SOPS and an API server is in
// cmd/certsync; these pin down the decisions that are hard to provoke there
// (a push race at an exact moment, a CA failing then recovering).

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// memTree is an immutable map of files.
type memTree struct {
	id     string
	files  map[string][]byte
	parent *memTree
}

func (t *memTree) Commit() string { return t.id }
func (t *memTree) Paths() []string {
	var out []string
	for p := range t.files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
func (t *memTree) ReadFile(p string) ([]byte, error) {
	b, ok := t.files[p]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return b, nil
}

// memRepo is a remote with one branch; beforePush lets a test move the
// remote between a commit and its push, as a concurrent agent would.
type memRepo struct {
	mu         sync.Mutex
	remote     *memTree
	local      *memTree
	n          int
	beforePush func(r *memRepo)
	pushes     int
	down       bool // pushes fail as if the server were away
}

func newMemRepo(files map[string]string) *memRepo {
	t := &memTree{id: "c0", files: map[string][]byte{}}
	for p, c := range files {
		t.files[p] = []byte(c)
	}
	return &memRepo{remote: t, local: t}
}

func (r *memRepo) Fetch(context.Context) (Tree, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.remote, nil
}
func (r *memRepo) Local(context.Context) (Tree, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.local, nil
}
func (r *memRepo) Pending(context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.local != r.remote {
		return 1, nil
	}
	return 0, nil
}

// PendingChanges lists the local head's files that differ from the remote.
func (r *memRepo) PendingChanges(context.Context) ([]FileChange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []FileChange
	for p, c := range r.local.files {
		if old, ok := r.remote.files[p]; !ok || string(old) != string(c) {
			out = append(out, FileChange{Path: p, Content: c})
		}
	}
	for p := range r.remote.files {
		if _, ok := r.local.files[p]; !ok {
			out = append(out, FileChange{Path: p, Delete: true})
		}
	}
	return out, nil
}

func (r *memRepo) Reset(_ context.Context, to Tree) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.local = to.(*memTree)
	return nil
}
func (r *memRepo) Commit(_ context.Context, parent Tree, changes []FileChange, _ string) (Tree, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	t := &memTree{id: "c" + string(rune('0'+r.n)), files: map[string][]byte{}, parent: parent.(*memTree)}
	for p, c := range parent.(*memTree).files {
		t.files[p] = c
	}
	for _, ch := range changes {
		if ch.Delete {
			delete(t.files, ch.Path)
		} else {
			t.files[ch.Path] = ch.Content
		}
	}
	r.local = t
	return t, nil
}
func (r *memRepo) Push(context.Context) error {
	if r.beforePush != nil {
		f := r.beforePush
		r.beforePush = nil
		f(r)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes++
	if r.down {
		return errors.New("connection refused")
	}
	if r.remote != r.local && !r.descends(r.local) {
		return ErrPushRace
	}
	r.remote = r.local
	return nil
}

// descends reports whether the remote head is an ancestor of t.
func (r *memRepo) descends(t *memTree) bool {
	for ; t != nil; t = t.parent {
		if t == r.remote {
			return true
		}
	}
	return false
}

// fakeEnc marks files as encrypted without encrypting: enough for the
// runner's flow; real SOPS is exercised in encrypt and cmd/certsync.
type fakeEnc struct{}

const fakeSOPS = "sops:\n  age:\n  - recipient: age1fake\n"

// Encrypt wraps each data value as ENC[...], as SOPS's output looks, so
// the plaintext check sees an encrypted file.
func (fakeEnc) Encrypt(_ context.Context, _ string, plain []byte) ([]byte, error) {
	var out []string
	inData := false
	for _, line := range strings.Split(string(plain), "\n") {
		if !strings.HasPrefix(line, " ") {
			inData = line == "data:"
		} else if k, v, ok := strings.Cut(line, ": "); inData && ok {
			line = k + ": ENC[AES256_GCM,data:" + v + "]"
		}
		out = append(out, line)
	}
	return append([]byte(strings.Join(out, "\n")), fakeSOPS...), nil
}
func (fakeEnc) Decrypt(_ context.Context, _ string, c []byte) ([]byte, error) {
	s := strings.TrimSuffix(string(c), fakeSOPS)
	s = strings.ReplaceAll(strings.ReplaceAll(s, "ENC[AES256_GCM,data:", ""), "]\n", "\n")
	return []byte(s), nil
}

// testCA signs every CSR; failNext makes the next orders fail.
type testCA struct {
	mu       sync.Mutex
	key      crypto.Signer
	cert     *x509.Certificate
	orders   int
	failNext int
	refuse   bool // answer every order with a permanent error
}

func newTestCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(10 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{key: key, cert: cert}
}

func (ca *testCA) Issue(_ context.Context, req issuer.Request) (*issuer.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.orders++
	if ca.failNext > 0 {
		ca.failNext--
		return nil, &issuer.RetryAfterError{Err: errors.New("rateLimited"), RetryAfter: t0.Add(3 * time.Hour)}
	}
	if ca.refuse {
		return nil, fmt.Errorf("%w: urn:ietf:params:acme:error:rejectedIdentifier", issuer.ErrPermanent)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(ca.orders + 100)), Subject: req.CSR.Subject, DNSNames: req.CSR.DNSNames, NotBefore: t0, NotAfter: t0.Add(90 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, req.CSR.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return &issuer.Certificate{ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Leaf: leaf}, nil
}

const testIssuer = `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: le}
spec:
  acme:
    server: https://acme.test/dir
    privateKeySecretRef: {name: le-account}
    solvers: [{http01: {}}]
`

func testCert(name string) string {
	return `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: ` + name + `, namespace: ns}
spec:
  secretName: ` + name + `-tls
  dnsNames: [` + name + `.example.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: le, kind: ClusterIssuer}
`
}

// testConfig is the Config of a test agent: repo, encryption by enc,
// every issuer the test CA, the test's clock.
func testConfig(repo Repository, enc Encrypter, ca *testCA, now *time.Time) Config {
	return Config{
		Repo:       repo,
		Encryption: func([]byte) (Encrypter, error) { return enc, nil },
		Issuers: func(context.Context, *declared.Issuer, crypto.Signer, issuer.SecretGetter) (issuer.Issuer, error) {
			return ca, nil
		},
		Clock: func() time.Time { return *now },
		// One name across "restarts", as the CLI's default gives.
		Agent: "agent-1",
	}
}

func newTestReconciler(t *testing.T, repo *memRepo, ca *testCA, now *time.Time) *Reconciler {
	t.Helper()
	r, err := New(testConfig(repo, fakeEnc{}, ca, now))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReconcileLostRaceReusesOrders(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b")})
	ca := newTestCA(t)
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	// Another writer pushes an unrelated file between our commit and push.
	repo.beforePush = func(r *memRepo) {
		r.mu.Lock()
		defer r.mu.Unlock()
		t2 := &memTree{id: "other", files: map[string][]byte{}, parent: r.remote}
		for p, c := range r.remote.files {
			t2.files[p] = c
		}
		t2.files["README.md"] = []byte("edited by someone else")
		r.remote = t2
	}
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Pushes: the order claim (lost the race), again on the new head, the
	// new account key, then the certificates.
	if ca.orders != 2 || len(res.Issued) != 2 || repo.pushes != 4 {
		t.Fatalf("orders %d, issued %d, pushes %d: a lost race must re-commit without ordering again", ca.orders, len(res.Issued), repo.pushes)
	}
	for _, p := range []string{"README.md", "secrets/default/ns/a-tls.yaml", "secrets/default/ns/b-tls.yaml", "accounts/clusterissuers/le-account.yaml"} {
		if _, err := repo.remote.ReadFile(p); err != nil {
			t.Errorf("%s missing on the remote after the retry", p)
		}
	}
	// Nothing due now: a second pass changes nothing.
	res, err = r.Reconcile(context.Background(), Options{})
	if err != nil || res.Commit != "" || ca.orders != 2 {
		t.Fatalf("second pass: err %v, commit %q, orders %d", err, res.Commit, ca.orders)
	}
}

func TestReconcileRaceAgainstSameCertificate(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a")})
	ca := newTestCA(t)
	now := t0
	mine := newTestReconciler(t, repo, ca, &now)
	// The other agent issues and pushes the same certificate first.
	repo.beforePush = func(r *memRepo) {
		other := newTestReconciler(t, r, ca, &now)
		saved := r.local
		r.local = r.remote
		if _, err := other.Reconcile(context.Background(), Options{}); err != nil {
			t.Error(err)
		}
		r.local = saved
	}
	res, err := mine.Reconcile(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Issued) != 0 || res.Commit != "" {
		t.Fatalf("the other agent already committed a/a-tls: ours must be dropped, got issued %v commit %q", res.Issued, res.Commit)
	}
}

func TestReconcileBacksOffAfterFailure(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b")})
	ca := newTestCA(t)
	ca.failNext = 1
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Issued) != 1 || res.Failed != 1 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Error(), "rateLimited") {
		t.Fatalf("one failure must not stop the other certificate: issued %d failed %d problems %v", len(res.Issued), res.Failed, res.Problems)
	}
	orders := ca.orders
	now = t0.Add(2 * time.Hour) // Retry-After says 3h
	res, _ = r.Reconcile(context.Background(), Options{})
	if ca.orders != orders || res.Plan.Count(Wait) != 1 {
		t.Fatalf("ordered again before Retry-After: orders %d→%d, plan %s", orders, ca.orders, kinds(res.Plan))
	}
	now = t0.Add(3 * time.Hour)
	res, _ = r.Reconcile(context.Background(), Options{})
	if len(res.Issued) != 1 {
		t.Fatalf("not retried after Retry-After: %s", kinds(res.Plan))
	}
}

func TestRenewalRequest(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b")})
	ca := newTestCA(t)
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	if _, err := r.Reconcile(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(time.Hour)
	match, _ := MatchSelector("a", "ns", false, "")
	keys, _, err := RequestRenewal(context.Background(), repo, match, "alice@laptop", now)
	if err != nil || len(keys) != 1 {
		t.Fatalf("request: %v %v", keys, err)
	}
	now = t0.Add(2 * time.Hour)
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil || len(res.Issued) != 1 || res.Issued[0].Certificate != "ns/a" || !strings.Contains(res.Issued[0].Reason, "requested") {
		t.Fatalf("requested renewal not done: %v %+v", err, res.Issued)
	}
	if _, err := repo.remote.ReadFile(committed.RenewRequestPath("ns", "a")); err == nil {
		t.Fatal("the request file must be removed with the renewal")
	}
}

// A push that fails leaves the certificates committed locally; when the
// remote moved meanwhile (a person committed), the next process reuses
// them on the new head instead of ordering again.
func TestUnpushedCertificatesAreNeverOrderedAgain(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b")})
	ca := newTestCA(t)
	now := t0
	// Git goes away right after the order claim is pushed.
	repo.beforePush = func(r *memRepo) {
		r.beforePush = func(r *memRepo) { r.down = true }
	}
	if _, err := newTestReconciler(t, repo, ca, &now).Reconcile(context.Background(), Options{}); err == nil {
		t.Fatal("a failed push must fail the pass")
	}
	if ca.orders != 2 {
		t.Fatalf("orders %d, want 2", ca.orders)
	}
	// Meanwhile a person commits on the remote; then Git comes back and a
	// new process (a restart) runs.
	repo.mu.Lock()
	t2 := &memTree{id: "human", files: map[string][]byte{"README.md": []byte("hi")}, parent: repo.remote}
	for p, c := range repo.remote.files {
		t2.files[p] = c
	}
	repo.remote, repo.down = t2, false
	repo.mu.Unlock()
	res, err := newTestReconciler(t, repo, ca, &now).Reconcile(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ca.orders != 2 || res.Reused != 2 {
		t.Fatalf("orders %d (want 2), reused %d (want 2)", ca.orders, res.Reused)
	}
	for _, p := range []string{"README.md", "secrets/default/ns/a-tls.yaml", "secrets/default/ns/b-tls.yaml", "accounts/clusterissuers/le-account.yaml"} {
		if _, err := repo.remote.ReadFile(p); err != nil {
			t.Errorf("%s missing on the remote", p)
		}
	}
}

// A permanent failure waits for a change, not a timer; a change to the
// issuer retries at once.
func TestPermanentFailureWaitsForAChange(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a")})
	ca := newTestCA(t)
	ca.refuse = true
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	if _, err := r.Reconcile(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(40 * time.Hour) // past any timer backoff
	res, _ := r.Reconcile(context.Background(), Options{})
	if ca.orders != 1 || res.Plan.Count(Wait) != 1 || !strings.Contains(res.Plan.Actions[0].Reason, "until the Certificate or its issuer changes") {
		t.Fatalf("a permanent failure was retried on a timer: orders %d, plan %s", ca.orders, kinds(res.Plan))
	}
	ca.refuse = false
	repo.mu.Lock()
	fixed := &memTree{id: "fix", files: map[string][]byte{}, parent: repo.remote}
	for p, c := range repo.remote.files {
		fixed.files[p] = c
	}
	fixed.files["le.yaml"] = []byte(strings.Replace(testIssuer, "https://acme.test/dir", "https://acme.test/directory", 1))
	repo.remote, repo.local = fixed, fixed
	repo.mu.Unlock()
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil || len(res.Issued) != 1 {
		t.Fatalf("a fixed issuer must retry at once: %v, plan %s", err, kinds(res.Plan))
	}
}

// Read-only is read-only: a dry run never pushes a pending commit.
func TestDryRunNeverPushes(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a")})
	ca := newTestCA(t)
	now := t0
	repo.down = true
	r := newTestReconciler(t, repo, ca, &now)
	r.Reconcile(context.Background(), Options{})
	repo.mu.Lock()
	repo.down = false
	pushes := repo.pushes
	repo.mu.Unlock()
	if _, err := r.Reconcile(context.Background(), Options{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if repo.pushes != pushes {
		t.Fatal("a dry run pushed")
	}
}

// Draining starts no new order and records no failure.
func TestDrainStartsNoOrder(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b")})
	ca := newTestCA(t)
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	drain := make(chan struct{})
	close(drain)
	res, err := r.Reconcile(context.Background(), Options{Drain: drain})
	if err != nil || ca.orders != 0 || res.Interrupted != 2 || len(r.Failures()) != 0 {
		t.Fatalf("err %v, orders %d, interrupted %d, failures %v", err, ca.orders, res.Interrupted, r.Failures())
	}
}

// An agent that died holding a claim delays its certificates until the
// claim lapses, never loses them; the claim file is then removed.
func TestLapsedClaimIsTakenOver(t *testing.T) {
	claim, err := committed.MarshalClaim(committed.Claim{Agent: "dead-agent", Expires: t0.Add(10 * time.Minute),
		Certificates: []string{"secrets/default/ns/a-tls.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	dead := committed.ClaimPath("dead-agent")
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b"), dead: string(claim)})
	ca := newTestCA(t)
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil || len(res.Issued) != 1 || res.Issued[0].Certificate != "ns/b" || res.Plan.Count(Wait) != 1 {
		t.Fatalf("while claimed: err %v, issued %+v, plan %s", err, res.Issued, kinds(res.Plan))
	}
	if !strings.Contains(res.Plan.Actions[0].Reason+res.Plan.Actions[1].Reason, "agent dead-agent is ordering it") {
		t.Errorf("the wait does not say who holds it: %s", kinds(res.Plan))
	}
	now = t0.Add(11 * time.Minute)
	res, err = r.Reconcile(context.Background(), Options{})
	if err != nil || len(res.Issued) != 1 || res.Issued[0].Certificate != "ns/a" {
		t.Fatalf("after the claim lapsed: err %v, issued %+v", err, res.Issued)
	}
	for path := range repo.remote.files {
		if strings.HasPrefix(path, committed.ClaimsDir) {
			t.Errorf("claim %s left on the remote", path)
		}
	}
	if ca.orders != 2 {
		t.Errorf("orders %d, want 2", ca.orders)
	}
}

// A claim whose orders all failed at the CA is left to lapse (other agents
// wait out the failure too, no empty commit); one with results is removed
// in the commit that carries them.
func TestClaimReleasedWithResultsOnly(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a")})
	ca := newTestCA(t)
	ca.refuse = true
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	r.Reconcile(context.Background(), Options{})
	own := committed.ClaimPath("agent-1")
	if _, err := repo.remote.ReadFile(own); err != nil {
		t.Fatal("a claim whose orders all failed must be left to lapse")
	}
	ca.refuse = false
	r.ClearFailures()
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil || len(res.Issued) != 1 {
		t.Fatalf("err %v, issued %d", err, len(res.Issued))
	}
	if _, err := repo.remote.ReadFile(own); err == nil {
		t.Fatal("the claim was not removed with the results")
	}
}

// A crash between the last push and the claim's release leaves the claim;
// the agent's next pass removes it although it orders nothing.
func TestStaleOwnClaimIsRemoved(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a")})
	ca := newTestCA(t)
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	if _, err := r.Reconcile(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	claim, _ := committed.MarshalClaim(committed.Claim{Agent: "agent-1", Expires: t0.Add(time.Hour), Certificates: []string{"secrets/default/ns/a-tls.yaml"}})
	own := committed.ClaimPath("agent-1")
	repo.mu.Lock()
	t2 := &memTree{id: "crashed", files: map[string][]byte{own: claim}, parent: repo.remote}
	for p, c := range repo.remote.files {
		t2.files[p] = c
	}
	repo.remote, repo.local = t2, t2
	repo.mu.Unlock()
	if _, err := r.Reconcile(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.remote.ReadFile(own); err == nil {
		t.Fatal("the stale claim was not removed")
	}
	if ca.orders != 1 {
		t.Errorf("orders %d, want 1", ca.orders)
	}
}
