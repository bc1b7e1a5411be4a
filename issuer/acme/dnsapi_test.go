package acme

// Shared harness of the provider-block tests (dns_*_test.go): lego's real
// provider code, built by certsync from a cert-manager manifest and its
// Secrets, reaches a loopback emulator of the provider's API (package
// internal/testbed/dnsapi) through Config.DNSAPITransport; the emulator
// checks the credentials and publishes the TXT records into the DNS Pebble
// validates against.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	edgegriddns "github.com/akamai/AkamaiOPEN-edgegrid-golang/v13/pkg/dns"
	"golang.org/x/oauth2"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/internal/testbed/dnsapi"
	"github.com/certsync/certsync/issuer"
)

// emulator is what the tests read of a dnsapi emulator.
type emulator interface {
	Records() map[string][]string
	Served() int
	Refused() int
}

// syncBuffer is a log sink that goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// dnsIssuerManifest is an Issuer of the test CA in namespace ns whose one
// solver is the DNS-01 provider block (the lines under "dns01:").
func dnsIssuerManifest(ns, block string) string {
	var indented strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		indented.WriteString("        " + line + "\n")
	}
	return fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: dns, namespace: %s}
spec:
  acme:
    server: %s
    email: ops@example.test
    privateKeySecretRef: {name: acct}
    solvers:
    - dns01:
%s`, ns, ca.DirectoryURL, indented.String())
}

// blockIssuer is an Issuer in namespace ns whose one solver is the DNS-01
// provider block (cert-manager YAML, the lines under "dns01:"), reaching
// the provider APIs of n, logging at debug level to logs.
func blockIssuer(t *testing.T, ns, block string, n *dnsapi.Network, secrets fakeSecrets, logs *syncBuffer) *Issuer {
	t.Helper()
	decl := parseIssuer(t, dnsIssuerManifest(ns, block))
	iss, err := New(context.Background(), Config{
		Issuer: decl, AccountKey: accountKey(t), Secrets: secrets, ExtraRootsPEM: ca.ServerCAPEM,
		DNS01:           DNS01Options{RecursiveNameservers: []string{ca.DNSAddr}},
		DNSAPITransport: n.Transport(),
		Logger:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// blockCase is one order through a provider block.
type blockCase struct {
	name    string
	ns      string // the issuer's namespace, where its Secrets are
	block   string // cert-manager YAML under dns01:
	secrets fakeSecrets
	// refused, when set, is a piece of the error expected when the
	// provider's API refuses the credentials; the order must fail.
	refused string
	// check are more pieces that error must hold (which Secret to check).
	check []string
	// never are the values that must not appear in any error or log:
	// the credentials, right and wrong.
	never []string
	// keepsRecords is set for an API without delete (acme-dns): its
	// records stay after cleanup, and the test checks them itself.
	keepsRecords bool
}

// runBlockCase orders a certificate for zone and its wildcard through c's
// block and checks what the emulator and the CA saw.
func runBlockCase(t *testing.T, n *dnsapi.Network, em emulator, zone string, c blockCase) {
	t.Helper()
	logs := &syncBuffer{}
	iss := blockIssuer(t, c.ns, c.block, n, c.secrets, logs)
	served, refused := em.Served(), em.Refused()
	names := []string{zone, "*." + zone}
	req, certKey := request(t, names...)
	cert, err := iss.Issue(context.Background(), req)
	for _, v := range c.never {
		if err != nil && strings.Contains(err.Error(), v) {
			t.Errorf("the error quotes a credential: %v", err)
		}
		if strings.Contains(logs.String(), v) {
			t.Errorf("the log quotes a credential:\n%s", logs)
		}
	}
	if c.refused == "" {
		if err != nil {
			t.Fatalf("issue: %v", err)
		}
		ca.VerifyIssued(t, cert.ChainPEM, certKey, names)
		if em.Served() <= served || em.Refused() != refused {
			t.Errorf("the API served %d requests and refused %d, want some served and none refused", em.Served()-served, em.Refused()-refused)
		}
	} else {
		if err == nil {
			t.Fatal("issued with credentials the API refuses")
		}
		t.Logf("the order failed as it should: %v", err)
		for _, want := range append([]string{c.refused, "refused the credentials", "DNS-01 provider "}, c.check...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		// Not permanent: the fix is a new Secret value, which the next
		// attempt reads; a permanent failure would wait for the Issuer
		// or the Certificate to change.
		var ra *issuer.RetryAfterError
		if errors.Is(err, issuer.ErrPermanent) || errors.As(err, &ra) {
			t.Errorf("a refused credential is a failed attempt retried with backoff, not permanent or rate-limited: %v", err)
		}
		if em.Refused() <= refused {
			t.Error("the API refused nothing")
		}
		// The order reached the CA (the credentials are only tried once
		// the challenges are known) and failed there: one failed attempt.
		if got := ca.OrderStatuses(iss.AccountURL()); len(got) != 1 || got[0] == "valid" {
			t.Errorf("the account's orders ended %v, want one that did not succeed", got)
		}
	}
	if recs := em.Records(); len(recs) != 0 && !c.keepsRecords {
		t.Errorf("after cleanup the API still holds %v", recs)
	}
	if txt := ca.TXT("_acme-challenge." + zone); len(txt) != 0 {
		t.Errorf("after cleanup the CA's DNS still answers %v", txt)
	}
}

// A *SecretRef naming a key its Secret lacks fails the order before it
// reaches the CA, naming the block, the field and the key.
func TestBlockSecretKeyMissing(t *testing.T) {
	n := dnsapi.Start(t)
	secrets := fakeSecrets{"team-a/creds/other": "x"}
	tests := []struct{ block, field string }{
		{"cloudflare: {apiTokenSecretRef: {name: creds, key: api-token}}", "apiTokenSecretRef"},
		{"cloudflare: {email: ops@example.test, apiKeySecretRef: {name: creds, key: api-key}}", "apiKeySecretRef"},
		{"route53: {region: eu-west-1, accessKeyID: AKIAEXAMPLE, secretAccessKeySecretRef: {name: creds, key: secret-access-key}}", "secretAccessKeySecretRef"},
		{"route53: {region: eu-west-1, accessKeyIDSecretRef: {name: creds, key: access-key-id}, secretAccessKeySecretRef: {name: creds, key: other}}", "accessKeyIDSecretRef"},
		{"digitalocean: {tokenSecretRef: {name: creds, key: access-token}}", "tokenSecretRef"},
		{"cloudDNS: {project: p, serviceAccountSecretRef: {name: creds, key: key.json}}", "serviceAccountSecretRef"},
		{"azureDNS: {clientID: c, tenantID: t, subscriptionID: s, resourceGroupName: rg, clientSecretSecretRef: {name: creds, key: client-secret}}", "clientSecretSecretRef"},
		{"acmeDNS: {host: 'https://auth.acme-dns.test', accountSecretRef: {name: creds, key: acmedns.json}}", "accountSecretRef"},
		{"akamai: {serviceConsumerDomain: akab.test, clientTokenSecretRef: {name: creds, key: client-token}, clientSecretSecretRef: {name: creds, key: other}, accessTokenSecretRef: {name: creds, key: other}}", "clientTokenSecretRef"},
		{"rfc2136: {nameserver: '127.0.0.1:53', tsigKeyName: k, tsigAlgorithm: HMACSHA256, tsigSecretSecretRef: {name: creds, key: tsig.key}}", "tsigSecretSecretRef"},
	}
	for _, tt := range tests {
		block := strings.SplitN(tt.block, ":", 2)[0]
		t.Run(block+" "+tt.field, func(t *testing.T) {
			iss := blockIssuer(t, "team-a", tt.block, n, secrets, &syncBuffer{})
			orders := ca.Orders()
			req, _ := request(t, "www.missing.test")
			_, err := iss.Issue(context.Background(), req)
			ref := iss.acme.Solvers[0].DNS01.Secrets[tt.field]
			for _, want := range []string{"DNS-01 provider " + block + ": ", tt.field + ": ", fmt.Sprintf("Secret team-a/creds has no key %q", ref.Key)} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want it to say %q", err, want)
				}
			}
			if !errors.Is(err, issuer.ErrPermanent) {
				t.Errorf("a missing Secret key is permanent until the repository changes: %v", err)
			}
			if ca.Orders() != orders {
				t.Error("the order reached the CA")
			}
		})
	}
}

// The refusals of the SDKs whose HTTP clients certsync cannot set (Azure,
// Akamai) and of OAuth token endpoints are recognised from their errors,
// as lego wraps them; other failures are left as they are.
func TestRefusedBy(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("[x.test] acme: error presenting token: azuredns: %w", err) }
	tests := []struct {
		name string
		err  error
		want string // "" when not a refusal
	}{
		{"Azure 403", wrap(&azcore.ResponseError{StatusCode: http.StatusForbidden, ErrorCode: "AuthorizationFailed"}), "HTTP 403 AuthorizationFailed"},
		{"Azure 404", wrap(&azcore.ResponseError{StatusCode: http.StatusNotFound, ErrorCode: "ResourceNotFound"}), ""},
		{"Akamai 401", wrap(&edgegriddns.Error{StatusCode: http.StatusUnauthorized, Title: "Not authorized"}), "HTTP 401 Not authorized"},
		{"Akamai 404", wrap(&edgegriddns.Error{StatusCode: http.StatusNotFound, Title: "Not Found"}), ""},
		{"OAuth invalid_grant", wrap(&oauth2.RetrieveError{ErrorCode: "invalid_grant"}), "the token endpoint refused the key: invalid_grant"},
		{"network", wrap(errors.New("dial tcp: connection refused")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := refusedBy(tt.err)
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("refusedBy = %q, %v; want %q", got, ok, tt.want)
			}
			h := &credentialHint{block: "azureDNS", check: "clientSecretSecretRef (Secret ns/azure, key secret)", watch: &apiWatch{}}
			explained := h.explainPresent(tt.err, 0)
			if tt.want == "" && explained != tt.err {
				t.Errorf("explained a failure that is no refusal: %v", explained)
			}
			if tt.want != "" && (!errors.Is(explained, tt.err) || !strings.Contains(explained.Error(), "DNS-01 provider azureDNS: the provider's API refused the credentials ("+tt.want+"): check that clientSecretSecretRef (Secret ns/azure, key secret)")) {
				t.Errorf("explained = %v", explained)
			}
		})
	}
}

// credentialSources names the Secret keys, never their values, and the
// agent's own identity when the block names none.
func TestCredentialSources(t *testing.T) {
	tests := []struct {
		solver declared.DNS01Solver
		want   string
	}{
		{declared.DNS01Solver{Provider: declared.DNS01Cloudflare, Settings: map[string]string{"email": "ops@example.test"}, Secrets: map[string]declared.SecretKeySelector{"apiKeySecretRef": {Name: "cf", Key: "api-key"}}},
			`apiKeySecretRef (Secret team-a/cf, key "api-key") holds a current credential allowed to change the zone's TXT records; also check the block's email`},
		{declared.DNS01Solver{Provider: declared.DNS01Route53, Settings: map[string]string{"region": "eu-west-1"}},
			"the agent's own AWS identity (IRSA, EKS Pod Identity, instance role, AWS_* environment) is allowed to change the zone's TXT records; also check the block's region"},
		{declared.DNS01Solver{Provider: declared.DNS01Akamai, Settings: map[string]string{"serviceConsumerDomain": "akab.test"}, Secrets: map[string]declared.SecretKeySelector{
			"clientTokenSecretRef": {Name: "ak", Key: "ct"}, "accessTokenSecretRef": {Name: "ak", Key: "at"}, "clientSecretSecretRef": {Name: "ak", Key: "cs"}}},
			`accessTokenSecretRef (Secret team-a/ak, key "at"), clientSecretSecretRef (Secret team-a/ak, key "cs"), clientTokenSecretRef (Secret team-a/ak, key "ct") hold current credentials allowed to change the zone's TXT records; also check the block's serviceConsumerDomain`},
	}
	for _, tt := range tests {
		t.Run(tt.solver.Provider, func(t *testing.T) {
			if got := credentialSources(&tt.solver, "team-a"); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
