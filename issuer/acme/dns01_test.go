package acme

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// A lego provider named by a webhook solver runs with the agent's
// environment and credentials (exec runs a program): the repository alone
// cannot choose one, even when the operator's environment configures it.
func TestWebhookProviderNeedsOperatorAllowList(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	script := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch '"+marker+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EXEC_PATH", script) // the operator's environment
	decl := parseIssuer(t, fmt.Sprintf(`apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: hook}
spec:
  acme:
    server: %s
    privateKeySecretRef: {name: acct}
    solvers:
    - dns01:
        webhook: {solverName: exec}
`, ca.DirectoryURL))
	tests := []struct {
		name    string
		allowed []string
	}{
		{"not allowed", nil},
		{"another provider allowed", []string{"httpreq"}},
		{"allowed by the operator", []string{"httpreq", "exec"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(marker)
			iss, err := New(context.Background(), Config{Issuer: decl, AccountKey: accountKey(t), ExtraRootsPEM: ca.ServerCAPEM,
				AllowedDNSProviders: tt.allowed, DNS01: DNS01Options{RecursiveNameservers: []string{ca.DNSAddr}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.allowed) < 2 {
				orders := ca.Orders()
				req, _ := request(t, "www.exec.test")
				_, err := iss.Issue(context.Background(), req)
				if !errors.Is(err, issuer.ErrPermanent) || !strings.Contains(err.Error(), `DNS-01 provider "exec" is not allowed`) || !strings.Contains(err.Error(), "--dns01-allow-providers=exec") {
					t.Fatalf("err = %v, want the exec provider refused", err)
				}
				if ca.Orders() != orders {
					t.Error("refused before ordering: no order may reach the CA")
				}
				if _, err := os.Stat(marker); err == nil {
					t.Fatal("the program named by EXEC_PATH ran")
				}
				return
			}
			p, err := iss.dns.get(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Present("www.exec.test", "token", "keyauth"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(marker); err != nil {
				t.Fatalf("the allowed provider did not run EXEC_PATH: %v", err)
			}
		})
	}
}

// Each of cert-manager's provider blocks builds its lego provider from the
// manifest and the Secrets it names; errors never quote a Secret's value.
func TestBuildProviders(t *testing.T) {
	const token = "s3cr3t-value-never-in-errors"
	ref := func(name string) declared.SecretKeySelector {
		return declared.SecretKeySelector{Name: name, Key: "value"}
	}
	secrets := fakeSecrets{
		"ns/token/value":   token,
		"ns/tsig/value":    "c2VjcmV0LXRzaWcta2V5LWJ5dGVz\n",
		"ns/gcp/value":     serviceAccountJSON(t),
		"ns/acmedns/value": `{"example.com": {"fulldomain": "x.auth.example.org", "subdomain": "x", "username": "u", "password": "` + token + `"}}`,
		"ns/garbage/value": "{" + token,
		"ns/empty/value":   "  \n",
	}
	tests := []struct {
		name      string
		solver    declared.DNS01Solver
		noSecrets bool // run without a SecretGetter
		wantErr   string
	}{
		{name: "cloudflare API token", solver: declared.DNS01Solver{Provider: "cloudflare", Secrets: map[string]declared.SecretKeySelector{"apiTokenSecretRef": ref("token")}}},
		{name: "cloudflare API key", solver: declared.DNS01Solver{Provider: "cloudflare", Settings: map[string]string{"email": "ops@example.com"}, Secrets: map[string]declared.SecretKeySelector{"apiKeySecretRef": ref("token")}}},
		{name: "route53 static keys", solver: declared.DNS01Solver{Provider: "route53", Settings: map[string]string{"accessKeyID": "AKIAEXAMPLE", "region": "eu-west-1", "hostedZoneID": "Z1"}, Secrets: map[string]declared.SecretKeySelector{"secretAccessKeySecretRef": ref("token")}}},
		{name: "route53 agent identity", solver: declared.DNS01Solver{Provider: "route53", Settings: map[string]string{"region": "eu-west-1"}}},
		{name: "digitalocean", solver: declared.DNS01Solver{Provider: "digitalocean", Secrets: map[string]declared.SecretKeySelector{"tokenSecretRef": ref("token")}}},
		{name: "rfc2136 with TSIG", solver: declared.DNS01Solver{Provider: "rfc2136", Settings: map[string]string{"nameserver": "[::1]", "tsigKeyName": "k", "tsigAlgorithm": "hmacsha512"}, Secrets: map[string]declared.SecretKeySelector{"tsigSecretSecretRef": ref("tsig")}}},
		{name: "cloudDNS service account", solver: declared.DNS01Solver{Provider: "cloudDNS", Settings: map[string]string{"project": "p", "hostedZoneName": "zone"}, Secrets: map[string]declared.SecretKeySelector{"serviceAccountSecretRef": ref("gcp")}}},
		{name: "acmeDNS", solver: declared.DNS01Solver{Provider: "acmeDNS", Settings: map[string]string{"host": "https://auth.example.org"}, Secrets: map[string]declared.SecretKeySelector{"accountSecretRef": ref("acmedns")}}},
		{name: "akamai", solver: declared.DNS01Solver{Provider: "akamai", Settings: map[string]string{"serviceConsumerDomain": "akab.example.net"}, Secrets: map[string]declared.SecretKeySelector{"clientTokenSecretRef": ref("token"), "clientSecretSecretRef": ref("token"), "accessTokenSecretRef": ref("token")}}},

		{name: "Secret missing", solver: declared.DNS01Solver{Provider: "digitalocean", Secrets: map[string]declared.SecretKeySelector{"tokenSecretRef": ref("nope")}}, wantErr: `tokenSecretRef: permanent: Secret ns/nope has no key "value"`},
		{name: "Secret key empty", solver: declared.DNS01Solver{Provider: "digitalocean", Secrets: map[string]declared.SecretKeySelector{"tokenSecretRef": ref("empty")}}, wantErr: `key "value" of Secret ns/empty is empty`},
		{name: "no source of Secrets", solver: declared.DNS01Solver{Provider: "digitalocean", Secrets: map[string]declared.SecretKeySelector{"tokenSecretRef": ref("token")}}, noSecrets: true, wantErr: "no source of Secrets"},
		// lego's Azure provider lists the zones when it is built (a network
		// call), so only what comes before is checked here.
		{name: "azureDNS client secret missing", solver: declared.DNS01Solver{Provider: "azureDNS", Settings: map[string]string{"clientID": "c", "tenantID": "t", "subscriptionID": "s", "resourceGroupName": "rg"}, Secrets: map[string]declared.SecretKeySelector{"clientSecretSecretRef": ref("nope")}}, wantErr: `clientSecretSecretRef: permanent: Secret ns/nope has no key "value"`},
		{name: "cloudDNS key is not JSON", solver: declared.DNS01Solver{Provider: "cloudDNS", Settings: map[string]string{"project": "p"}, Secrets: map[string]declared.SecretKeySelector{"serviceAccountSecretRef": ref("garbage")}}, wantErr: "no Google service account JSON key"},
		{name: "acmeDNS accounts are not JSON", solver: declared.DNS01Solver{Provider: "acmeDNS", Settings: map[string]string{"host": "https://auth.example.org"}, Secrets: map[string]declared.SecretKeySelector{"accountSecretRef": ref("garbage")}}, wantErr: "no acme-dns accounts JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var getter issuer.SecretGetter = secrets
			if tt.noSecrets {
				getter = nil
			}
			b := blockBuilder{secrets: secretSource{getter: getter, namespace: "ns"}, transport: http.DefaultTransport}
			p, err := b.build(context.Background(), &tt.solver)
			if err != nil && strings.Contains(err.Error(), token) {
				t.Fatalf("the error quotes the Secret's value: %v", err)
			}
			if tt.wantErr == "" {
				if err != nil || p == nil {
					t.Fatalf("build: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, issuer.ErrPermanent) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want permanent %q", err, tt.wantErr)
			}
		})
	}
}

// serviceAccountJSON is a Google service account key file with a fresh key.
func serviceAccountJSON(t *testing.T) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "p", "client_email": "certsync@p.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "token_uri": "https://oauth2.googleapis.com/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
