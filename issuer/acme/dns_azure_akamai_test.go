package acme

// lego's azureDNS and akamai providers cannot be pointed at a loopback
// emulator without process-wide changes, so these tests prove what
// certsync controls: the lego configuration built from the cert-manager
// fields and Secrets, and (Akamai) that those credentials sign requests
// the EdgeGrid check accepts.
//
//   - azuredns (lego v4.35.2, credentials.go, public.go,
//     servicediscovery.go) builds its azidentity credential and its
//     armresourcegraph and armdns clients with azcore.ClientOptions{Cloud}
//     only: no Transport, so they use azcore/runtime's package-level
//     default HTTP client (system roots, HTTPS_PROXY). Config.HTTPClient
//     serves only OIDC assertion requests. A private cloud.Configuration
//     would not help either: MSAL validates any authority host it does not
//     know at https://login.microsoftonline.com/common/discovery/instance.
//   - edgedns (lego v4.35.2, edgedns.go) opens its EdgeGrid session with
//     session.New(session.WithSigner(config)) in each Present and CleanUp,
//     without session.WithClient: the session uses http.DefaultClient, and
//     the signer forces https.

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	edgegriddns "github.com/akamai/AkamaiOPEN-edgegrid-golang/v13/pkg/dns"
	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v13/pkg/session"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/internal/testbed/dnsapi"
)

// azureDNS: the lego configuration carries the block's subscription,
// resource group, zone and cloud, and the service principal with the
// client secret from clientSecretSecretRef; without one, the agent's own
// identity (lego's default credential chain).
func TestBlockAzureDNSConfig(t *testing.T) {
	const secret = "azure-client-secret-Q7w~x9"
	secrets := fakeSecrets{"team-a/azure/client-secret": secret + "\n"}
	tests := []struct {
		name  string
		block string
		check func(t *testing.T, got map[string]any)
	}{
		{"service principal in Azure China", `azureDNS: {clientID: 11111111-2222-3333-4444-555555555555, tenantID: tenant-a, subscriptionID: sub-a, resourceGroupName: dns-rg, hostedZoneName: az.test, environment: AzureChinaCloud, clientSecretSecretRef: {name: azure, key: client-secret}}`,
			func(t *testing.T, got map[string]any) {
				want := map[string]any{"AuthMethod": "env", "ClientID": "11111111-2222-3333-4444-555555555555", "ClientSecret": secret, "TenantID": "tenant-a",
					"SubscriptionID": "sub-a", "ResourceGroup": "dns-rg", "ZoneName": "az.test", "Environment": cloud.AzureChina}
				compareFields(t, got, want)
			}},
		{"the agent's own identity", `azureDNS: {subscriptionID: sub-a, resourceGroupName: dns-rg}`,
			func(t *testing.T, got map[string]any) {
				want := map[string]any{"AuthMethod": "", "ClientID": "", "ClientSecret": "", "TenantID": "",
					"SubscriptionID": "sub-a", "ResourceGroup": "dns-rg", "ZoneName": "", "Environment": cloud.AzurePublic}
				compareFields(t, got, want)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := blockSolver(t, "team-a", tt.block)
			cfg, err := azureDNSConfig(context.Background(), s, secretSource{getter: secrets, namespace: "team-a"})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, structFields(cfg))
		})
	}
}

// akamai: the lego configuration carries the API host and the three
// EdgeGrid credentials from their Secrets; requests signed with it, by the
// EdgeGrid session and EdgeDNS client lego's provider uses, are accepted by
// the EdgeGrid check, and a wrong client secret is refused with an error
// that names the Secrets to check.
func TestBlockAkamaiCredentials(t *testing.T) {
	const host = "akab-certsync-test.luna.akamaiapis.net"
	const clientToken, accessToken, clientSecret = "akab-client-token-1a2b", "akab-access-token-3c4d", "client-secret-5e6f+/="
	n := dnsapi.Start(t)
	em := dnsapi.StartEdgeDNS(n, ca, host, clientToken, accessToken, clientSecret, "ak.test")
	secrets := fakeSecrets{
		"team-a/akamai/client-token":  clientToken,
		"team-a/akamai/access-token":  accessToken + "\n",
		"team-a/akamai/client-secret": clientSecret,
		"team-b/akamai/client-token":  clientToken,
		"team-b/akamai/access-token":  accessToken,
		"team-b/akamai/client-secret": "client-secret-rotated-9z",
	}
	block := `akamai: {serviceConsumerDomain: ` + host + `, clientTokenSecretRef: {name: akamai, key: client-token}, clientSecretSecretRef: {name: akamai, key: client-secret}, accessTokenSecretRef: {name: akamai, key: access-token}}`
	tests := []struct {
		ns      string
		refused bool
	}{
		{ns: "team-a"},
		{ns: "team-b", refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.ns, func(t *testing.T) {
			s := blockSolver(t, tt.ns, block)
			cfg, err := akamaiConfig(context.Background(), s, secretSource{getter: secrets, namespace: tt.ns})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != host || cfg.ClientToken != clientToken || cfg.AccessToken != accessToken {
				t.Errorf("host, client token, access token = %q, %q, %q", cfg.Host, cfg.ClientToken, cfg.AccessToken)
			}
			// lego's Present starts with this read, through a session
			// that signs with its config; here the session gets the test
			// network's client, which lego gives it no way to take.
			sess, err := session.New(session.WithSigner(cfg), session.WithClient(&http.Client{Transport: n.Transport()}))
			if err != nil {
				t.Fatal(err)
			}
			refused := em.Refused()
			_, err = edgegriddns.Client(sess).GetRecord(context.Background(), edgegriddns.GetRecordRequest{Zone: "ak.test", Name: "_acme-challenge.ak.test", RecordType: "TXT"})
			var apiErr *edgegriddns.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("GetRecord: %v, want an EdgeDNS API error", err)
			}
			if !tt.refused {
				if apiErr.StatusCode != http.StatusNotFound || em.Refused() != refused {
					t.Fatalf("GetRecord: %v (HTTP %d), want the signature accepted and no record found", err, apiErr.StatusCode)
				}
				return
			}
			if apiErr.StatusCode != http.StatusUnauthorized || em.Refused() == refused {
				t.Fatalf("GetRecord: %v (HTTP %d), want the signature refused", err, apiErr.StatusCode)
			}
			h := newCredentialHint(s, tt.ns, &apiWatch{})
			msg := h.explainPresent(err, 0).Error()
			for _, want := range []string{"DNS-01 provider akamai: the provider's API refused the credentials (HTTP 401 Not authorized)", `clientSecretSecretRef (Secret team-b/akamai, key "client-secret")`, "also check the block's serviceConsumerDomain"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q: %s", want, msg)
				}
			}
			if strings.Contains(msg, "client-secret-rotated-9z") || strings.Contains(msg, clientSecret) {
				t.Errorf("the error quotes a credential: %s", msg)
			}
		})
	}
}

// blockSolver parses an Issuer in namespace ns with one DNS-01 block, as
// the reconciler does, and returns the block.
func blockSolver(t *testing.T, ns, block string) *declared.DNS01Solver {
	t.Helper()
	var indented strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		indented.WriteString("        " + line + "\n")
	}
	decl := parseIssuer(t, "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: dns, namespace: "+ns+"}\nspec:\n  acme:\n    server: https://acme.example.test/directory\n    privateKeySecretRef: {name: acct}\n    solvers:\n    - dns01:\n"+indented.String())
	return decl.ACME.Solvers[0].DNS01
}

// structFields maps a struct's (or pointer to struct's) exported fields.
func structFields(v any) map[string]any {
	rv := reflect.Indirect(reflect.ValueOf(v))
	out := map[string]any{}
	for i := range rv.NumField() {
		if f := rv.Type().Field(i); f.IsExported() {
			out[f.Name] = rv.Field(i).Interface()
		}
	}
	return out
}

func compareFields(t *testing.T, got, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}
