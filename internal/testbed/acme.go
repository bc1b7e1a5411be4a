package testbed

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/certsync/certsync/pki"
)

// ACMEOptions configure the test CA.
type ACMEOptions struct {
	// HTTP01Port is the port Pebble's VA dials for HTTP-01: where the
	// certsync under test answers challenges.
	HTTP01Port int
	// CertValidity is the lifetime of issued certificates. Default: 90 days.
	CertValidity time.Duration
}

// ACME is Pebble, Let's Encrypt's test CA, running in-process with
// challtestsrv as the DNS server its VA asks: every name resolves to
// 127.0.0.1 and TXT records are set through HTTPReqURL or an RFC 2136
// server (StartRFC2136).
type ACME struct {
	DirectoryURL string
	// EABDirectoryURL is the same CA behind a front end that requires an
	// external account binding (externalAccountRequired), as ZeroSSL and
	// Google's CA do; keys are added with AddEABKey.
	EABDirectoryURL string
	// ServerCAPEM is the certificate of the HTTPS server: trust it to talk
	// to DirectoryURL.
	ServerCAPEM []byte
	// DNSAddr is the DNS server ("127.0.0.1:PORT") for DNS-01 lookups.
	// It answers SOA for every two-label name, so lego finds zones.
	DNSAddr string
	// HTTPReqURL speaks lego's httpreq DNS provider protocol (POST /present
	// and /cleanup with {"fqdn","value"}) and sets TXT records in the DNS
	// server: tests use lego's real "httpreq" provider against it.
	HTTPReqURL string

	ca       *ca.CAImpl
	db       *db.MemoryStore
	dns      *challtestsrv.ChallSrv
	orders   atomic.Int64
	accounts atomic.Int64
	mu       sync.Mutex
	// hook sees every request before Pebble does (SetHook).
	hook    func(*http.Request)
	failing []injectedFailure
	// replaces are the non-empty "replaces" fields of newOrder requests.
	replaces []string
	// newOrders keeps newOrder requests apart from authorization requests:
	// Pebble v2.10.1 takes its store's lock then each authorization's in
	// newOrder, and an authorization's lock then the store's in the authz
	// handler, which deadlocks once a writer queues between them (seen
	// after a few thousand concurrent orders).
	newOrders sync.RWMutex
}

type injectedFailure struct {
	status     int
	problem    string
	retryAfter time.Duration
}

// challtestsrv registers on miekg/dns's global handler: one per process.
var acmeRunning atomic.Bool

// StartACME starts the CA. Only one may run per process.
func StartACME(t TB, opts ACMEOptions) *ACME {
	t.Helper()
	if !acmeRunning.CompareAndSwap(false, true) {
		t.Fatalf("StartACME: a test CA is already running in this process (challtestsrv allows one); share it")
	}
	t.Cleanup(func() { acmeRunning.Store(false) })
	// Pebble reads these at construction; they are test-only knobs:
	// validate at once, never reject a good nonce, never reuse an authz.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	os.Setenv("PEBBLE_AUTHZREUSE", "0")

	a := &ACME{}
	challAddr := freeLoopback(t)
	srv, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{challAddr}, Log: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatalf("challtestsrv: %v", err)
	}
	srv.SetDefaultDNSIPv4("127.0.0.1")
	srv.SetDefaultDNSIPv6("")
	go srv.Run()
	t.Cleanup(srv.Shutdown)
	waitForDNS(t, challAddr)
	// The VA and lego ask the front, which answers SOA (zonedns.go).
	dnsAddr := startZoneDNS(t, challAddr)
	a.dns, a.DNSAddr = srv, dnsAddr

	logger := log.New(io.Discard, "pebble ", 0)
	validity := uint64(opts.CertValidity / time.Second)
	a.db = db.NewMemoryStore()
	a.ca = ca.New(logger, a.db, "", "rsa", 0, 1, map[string]ca.Profile{
		"default": {Description: "certsync tests", ValidityPeriod: validity},
	})
	v := va.New(logger, opts.HTTP01Port, 0, false, dnsAddr, a.db)
	w := wfe.New(logger, a.db, v, a.ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	server := httptest.NewTLSServer(a.wrap(w.Handler()))
	t.Cleanup(server.Close)
	a.DirectoryURL = server.URL + wfe.DirectoryPath
	eab := wfe.New(logger, a.db, v, a.ca, []string{"pebble.letsencrypt.org"}, false, true, 0, 0)
	eabServer := httptest.NewUnstartedServer(a.wrap(eab.Handler()))
	eabServer.TLS = server.TLS // the same certificate: one ServerCAPEM for both
	eabServer.StartTLS()
	t.Cleanup(eabServer.Close)
	a.EABDirectoryURL = eabServer.URL + wfe.DirectoryPath
	a.ServerCAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw})

	hook := httptest.NewServer(http.HandlerFunc(a.httpreq))
	t.Cleanup(hook.Close)
	a.HTTPReqURL = hook.URL
	return a
}

// wrap counts orders, injects failures, and answers a challenge POST only
// once the VA has finished with it. Pebble otherwise answers "processing"
// and lego's first poll waits 5 s per order.
func (a *ACME) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		hook := a.hook
		a.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/sign-me-up":
			rec := &statusRecorder{ResponseWriter: w}
			h.ServeHTTP(rec, r)
			if rec.status == http.StatusCreated {
				a.accounts.Add(1)
			}
			return
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/authZ/"):
			a.newOrders.RLock()
			defer a.newOrders.RUnlock()
		case r.Method == http.MethodPost && r.URL.Path == "/order-plz":
			a.newOrders.Lock()
			defer a.newOrders.Unlock()
			a.recordReplaces(r)
			if f, ok := a.nextFailure(); ok {
				w.Header().Set("Content-Type", "application/problem+json")
				if f.retryAfter > 0 {
					w.Header().Set("Retry-After", fmt.Sprint(int(f.retryAfter.Seconds())))
				}
				w.WriteHeader(f.status)
				json.NewEncoder(w).Encode(map[string]any{"type": f.problem, "detail": "injected by the test", "status": f.status})
				return
			}
			a.orders.Add(1)
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/chalZ/"):
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := a.awaitChallenge(strings.TrimPrefix(r.URL.Path, "/chalZ/"), rec.Body.Bytes())
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// awaitChallenge waits (bounded) for the VA's verdict and rewrites the
// status in the response body to it.
func (a *ACME) awaitChallenge(id string, body []byte) []byte {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ch := a.db.GetChallengeByID(id)
		if ch == nil {
			return body
		}
		ch.RLock()
		status := ch.Status
		ch.RUnlock()
		if status == "valid" || status == "invalid" {
			return bytes.Replace(body, []byte(`"status": "processing"`), []byte(`"status": "`+status+`"`), 1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return body
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// SetHook calls fn with every request before Pebble handles it (nil
// removes it): a test can act at an exact step of an order, e.g. kill the
// client when it asks to finalize ("/finalize-order/").
func (a *ACME) SetHook(fn func(*http.Request)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hook = fn
}

// SetRenewalWindow makes the CA suggest [start, end] as the renewal
// window (ARI) of the certificate with the given hex serial, as a CA does
// when it must revoke certificates early.
func (a *ACME) SetRenewalWindow(serialHex string, start, end time.Time) error {
	serial, ok := new(big.Int).SetString(serialHex, 16)
	if !ok {
		return fmt.Errorf("serial %q is not hex", serialHex)
	}
	body, err := json.Marshal(map[string]any{"suggestedWindow": map[string]string{
		"start": start.UTC().Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339)}})
	if err != nil {
		return err
	}
	return a.db.SetARIResponse(serial, string(body))
}

// Accounts counts the ACME accounts created (201 to newAccount).
func (a *ACME) Accounts() int { return int(a.accounts.Load()) }

// Fail makes the next n newOrder requests fail with an ACME problem
// (e.g. 429 "urn:ietf:params:acme:error:rateLimited"), with Retry-After.
func (a *ACME) Fail(n, status int, problemType string, retryAfter time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range n {
		a.failing = append(a.failing, injectedFailure{status, problemType, retryAfter})
	}
}

func (a *ACME) nextFailure() (injectedFailure, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.failing) == 0 {
		return injectedFailure{}, false
	}
	f := a.failing[0]
	a.failing = a.failing[1:]
	return f, true
}

// recordReplaces notes the ARI "replaces" field (RFC 9773) of a newOrder
// request: the payload of the JWS (flattened JSON serialization) is
// base64url JSON. The body is put back for Pebble.
func (a *ACME) recordReplaces(r *http.Request) {
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return
	}
	var jws struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil {
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(jws.Payload, "="))
	if err != nil {
		return
	}
	var order struct {
		Replaces string `json:"replaces"`
	}
	if json.Unmarshal(payload, &order) != nil || order.Replaces == "" {
		return
	}
	a.syncReplaced(order.Replaces)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.replaces = append(a.replaces, order.Replaces)
}

// syncReplaced takes and releases the lock of the order that issued the
// certificate certID (RFC 9773: base64url AKI "." base64url serial) names.
// Pebble v2.10.1 marks that order replaced under its lock but reads the
// mark without it; the handoff here orders the read after an earlier
// replacement's write, so -race reports no race inside Pebble.
func (a *ACME) syncReplaced(certID string) {
	_, serial, ok := strings.Cut(certID, ".")
	if !ok {
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(serial)
	if err != nil {
		return
	}
	if o, err := a.db.GetOrderByIssuedSerial(hex.EncodeToString(raw)); err == nil {
		o.RLock()
		_ = o.IsReplaced
		o.RUnlock()
	}
}

// Replaces returns the "replaces" values (ARI certificate IDs) of the
// newOrder requests seen so far, in order.
func (a *ACME) Replaces() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.replaces)
}

// AddEABKey registers an external account binding key, as Pebble's
// externalAccountMACKeys configuration does: keyID with the HMAC key in
// unpadded base64url, the form cert-manager's keySecretRef holds.
func (a *ACME) AddEABKey(t TB, keyID, hmacBase64URL string) {
	t.Helper()
	if err := a.db.AddExternalAccountKeyByID(keyID, hmacBase64URL); err != nil {
		t.Fatalf("add EAB key %s: %v", keyID, err)
	}
}

// Orders counts newOrder requests served.
func (a *ACME) Orders() int { return int(a.orders.Load()) }

// RootsPEM is the root the issued chains lead to.
func (a *ACME) RootsPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.ca.GetRootCert(0).Cert.Raw})
}

// httpreq implements lego's httpreq provider protocol on challtestsrv.
func (a *ACME) httpreq(w http.ResponseWriter, r *http.Request) {
	var msg struct{ FQDN, Value string }
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || msg.FQDN == "" {
		http.Error(w, "want {fqdn, value}", http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/present":
		a.dns.AddDNSTXTRecord(msg.FQDN, msg.Value)
	case "/cleanup":
		a.dns.DeleteDNSTXTRecord(msg.FQDN)
	default:
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func freeLoopback(t TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitForDNS polls until challtestsrv answers: it has no ready signal.
func waitForDNS(t TB, addr string) {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("ready.test.", dns.TypeA)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if _, _, err := c.ExchangeContext(ctx, m, addr); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("challtestsrv DNS on %s did not answer", addr)
}

// VerifyIssued checks a certificate chain the CA issued: it verifies to
// the CA's root, its SANs are dnsNames (any order), and it is for key.
// It returns the leaf.
func (a *ACME) VerifyIssued(t TB, chainPEM []byte, key crypto.Signer, dnsNames []string) *x509.Certificate {
	t.Helper()
	chain, err := pki.ParseChain(chainPEM)
	if err != nil {
		t.Fatalf("issued chain: %v", err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM(a.RootsPEM())
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		t.Fatalf("chain does not verify to the CA root: %v", err)
	}
	got, want := slices.Clone(chain[0].DNSNames), slices.Clone(dnsNames)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("SANs %v, want %v", got, want)
	}
	if !pki.KeyMatches(chain[0], key) {
		t.Fatalf("certificate is not for the expected key")
	}
	return chain[0]
}
