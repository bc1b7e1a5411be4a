package acme

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// One CA and one HTTP-01 listener for the whole test binary (challtestsrv
// allows one per process).
var (
	ca     *testbed.ACME
	solver = NewHTTP01Solver(nil)
)

func TestMain(m *testing.M) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go http.Serve(ln, solver)
	tb := &testbed.Process{}
	ca = testbed.StartACME(tb, testbed.ACMEOptions{HTTP01Port: ln.Addr().(*net.TCPAddr).Port})
	// The operator's environment configures the httpreq provider the
	// test issuer's webhook solver names (and the operator allows).
	os.Setenv("HTTPREQ_ENDPOINT", ca.HTTPReqURL)
	code := m.Run()
	tb.Close()
	ln.Close()
	os.Exit(code)
}

func testIssuer(t *testing.T, key crypto.Signer) *Issuer {
	t.Helper()
	iss, err := New(context.Background(), Config{
		Issuer: declared.Issuer{Kind: declared.KindClusterIssuer, Name: "test", ACME: &declared.ACMEIssuer{
			Server: ca.DirectoryURL, Email: "ops@example.test", PrivateKeySecretRef: "acct",
			Solvers: []declared.Solver{
				{HTTP01: &declared.HTTP01Solver{}},
				{Selector: &declared.SolverSelector{DNSZones: []string{"dns.test"}},
					DNS01: &declared.DNS01Solver{Provider: declared.DNS01Webhook, SolverName: "httpreq"}},
			},
		}},
		AccountKey:          key,
		HTTP01:              solver,
		DNS01:               DNS01Options{RecursiveNameservers: []string{ca.DNSAddr}, CheckPropagation: false},
		AllowedDNSProviders: []string{"httpreq"},
		ExtraRootsPEM:       ca.ServerCAPEM,
	})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// fakeSecrets is an issuer.SecretGetter over "namespace/name/key" → value.
type fakeSecrets map[string]string

func (f fakeSecrets) SecretKey(_ context.Context, namespace, name, key string) ([]byte, error) {
	v, ok := f[namespace+"/"+name+"/"+key]
	if !ok {
		return nil, fmt.Errorf("%w: Secret %s/%s has no key %q", issuer.ErrPermanent, namespace, name, key)
	}
	return []byte(v), nil
}

// parseIssuer reads one Issuer or ClusterIssuer manifest as the reconciler
// does, so tests run what a repository declares.
func parseIssuer(t *testing.T, manifest string) declared.Issuer {
	t.Helper()
	set := declared.ParseFile(declared.File{Path: "issuer.yaml", Content: []byte(manifest)})
	if len(set.Problems) > 0 || len(set.Issuers) != 1 {
		t.Fatalf("issuer manifest: %v", set.Problems)
	}
	return set.Issuers[0]
}

func accountKey(t *testing.T) crypto.Signer {
	k, err := pki.GenerateKey(declared.KeySpec{Algorithm: declared.ECDSA, Size: 256})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func request(t *testing.T, names ...string) (issuer.Request, crypto.Signer) {
	t.Helper()
	key, _ := pki.GenerateKey(declared.KeySpec{Algorithm: declared.ECDSA, Size: 256})
	c := &declared.Certificate{Namespace: "ns", Name: "c", DNSNames: names}
	csr, err := pki.CSR(c, key)
	if err != nil {
		t.Fatal(err)
	}
	return issuer.Request{Name: "ns/c", CSR: csr, DNSNames: names}, key
}

func TestIssue(t *testing.T) {
	iss := testIssuer(t, accountKey(t))
	tests := []struct {
		name  string
		names []string
	}{
		{"HTTP-01, two names", []string{"www.http.test", "shop.http.test"}},
		{"DNS-01 via lego's httpreq provider, wildcard and apex", []string{"dns.test", "*.dns.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, key := request(t, tt.names...)
			cert, err := iss.Issue(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			ca.VerifyIssued(t, cert.ChainPEM, key, tt.names)
			w, ok, err := iss.RenewalWindow(context.Background(), cert.Leaf)
			if err != nil || !ok || w.Start.Before(cert.Leaf.NotBefore) || w.End.After(cert.Leaf.NotAfter) || !w.End.After(w.Start) {
				t.Errorf("ARI window %v–%v (ok %v, err %v) not inside the validity %v–%v", w.Start, w.End, ok, err, cert.Leaf.NotBefore, cert.Leaf.NotAfter)
			}
		})
	}
}

func TestAccountReused(t *testing.T) {
	key := accountKey(t)
	a, b := testIssuer(t, key), testIssuer(t, key)
	if a.AccountURL() == "" || a.AccountURL() != b.AccountURL() {
		t.Fatalf("same key, accounts %q and %q", a.AccountURL(), b.AccountURL())
	}
	if c := testIssuer(t, accountKey(t)); c.AccountURL() == a.AccountURL() {
		t.Fatal("a new key must get a new account")
	}
}

func TestConcurrentOrders(t *testing.T) {
	iss := testIssuer(t, accountKey(t))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := request(t, fmt.Sprintf("c%d.http.test", i))
			if _, err := iss.Issue(context.Background(), req); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestIssueRefusals(t *testing.T) {
	iss := testIssuer(t, accountKey(t))
	tests := []struct {
		name  string
		names []string
		want  string
	}{
		{"wildcard via HTTP-01", []string{"*.http.test"}, "HTTP-01 cannot validate wildcard names"},
		{"mixed challenge types", []string{"a.http.test", "a.dns.test"}, "one challenge type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orders := ca.Orders()
			req, _ := request(t, tt.names...)
			_, err := iss.Issue(context.Background(), req)
			if !errors.Is(err, issuer.ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want permanent %q", err, tt.want)
			}
			if ca.Orders() != orders {
				t.Error("refused before ordering: no order may reach the CA")
			}
		})
	}
}

func TestRateLimited(t *testing.T) {
	iss := testIssuer(t, accountKey(t))
	ca.Fail(1, http.StatusTooManyRequests, "urn:ietf:params:acme:error:rateLimited", time.Hour)
	req, _ := request(t, "limited.http.test")
	_, err := iss.Issue(context.Background(), req)
	var ra *issuer.RetryAfterError
	if !errors.As(err, &ra) || ra.RetryAfter.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("err = %v, want RetryAfterError about an hour ahead", err)
	}
	if errors.Is(err, issuer.ErrPermanent) {
		t.Error("a rate limit is not permanent")
	}
	if _, err := iss.Issue(context.Background(), req); err != nil {
		t.Fatalf("after the limit: %v", err)
	}
}

func TestSelectSolver(t *testing.T) {
	http := declared.Solver{HTTP01: &declared.HTTP01Solver{}}
	zone := func(z ...string) declared.Solver {
		return declared.Solver{Selector: &declared.SolverSelector{DNSZones: z}, DNS01: &declared.DNS01Solver{Provider: "z"}}
	}
	names := func(n ...string) declared.Solver {
		return declared.Solver{Selector: &declared.SolverSelector{DNSNames: n}, DNS01: &declared.DNS01Solver{Provider: "n"}}
	}
	labels := func(l map[string]string) declared.Solver {
		return declared.Solver{Selector: &declared.SolverSelector{MatchLabels: l}, HTTP01: &declared.HTTP01Solver{}}
	}
	tests := []struct {
		name    string
		solvers []declared.Solver
		dns     string
		labels  map[string]string
		want    int
	}{
		{"only default", []declared.Solver{http}, "a.example.com", nil, 0},
		{"zone beats default", []declared.Solver{http, zone("example.com")}, "a.example.com", nil, 1},
		{"zone covers wildcard", []declared.Solver{http, zone("example.com")}, "*.example.com", nil, 1},
		{"zone covers apex", []declared.Solver{http, zone("example.com")}, "example.com", nil, 1},
		{"longest zone wins", []declared.Solver{zone("example.com"), zone("shop.example.com")}, "a.shop.example.com", nil, 1},
		{"dnsNames beat zones", []declared.Solver{zone("shop.example.com"), names("a.shop.example.com")}, "a.shop.example.com", nil, 1},
		{"zone does not match other domain", []declared.Solver{zone("example.com")}, "example.org", nil, -1},
		{"suffix is not a zone", []declared.Solver{zone("example.com")}, "badexample.com", nil, -1},
		{"labels must all match", []declared.Solver{http, labels(map[string]string{"team": "a"})}, "x.test", map[string]string{"team": "b"}, 0},
		{"labels beat default", []declared.Solver{http, labels(map[string]string{"team": "a"})}, "x.test", map[string]string{"team": "a"}, 1},
		{"first of equals", []declared.Solver{http, http}, "x.test", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SelectSolver(tt.solvers, tt.dns, tt.labels); got != tt.want {
				t.Errorf("SelectSolver = %d, want %d", got, tt.want)
			}
		})
	}
}
