package declared

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// dns01Issuer is an Issuer whose one solver is the given dns01 block,
// written from line 12 on at the indentation of the provider's name.
func dns01Issuer(block string) string {
	return `apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: dns
  namespace: team-a
spec:
  acme:
    server: https://acme.example/dir
    privateKeySecretRef: {name: acct}
    solvers:
    - dns01:
` + indent(block, "        ")
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = by + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func parseOneIssuer(t *testing.T, manifest string) (*Issuer, []Problem) {
	t.Helper()
	set := ParseFile(File{Path: "issuer.yaml", Content: []byte(manifest)})
	if len(set.Issuers) == 1 {
		return &set.Issuers[0], set.Problems
	}
	return nil, set.Problems
}

func refs(kv ...string) map[string]SecretKeySelector {
	m := map[string]SecretKeySelector{}
	for i := 0; i+2 < len(kv); i += 3 {
		m[kv[i]] = SecretKeySelector{Name: kv[i+1], Key: kv[i+2]}
	}
	return m
}

func TestParseDNS01Providers(t *testing.T) {
	tests := []struct {
		name  string
		block string
		want  DNS01Solver
	}{
		{"cloudflare token", `
cloudflare:
  apiTokenSecretRef: {name: cf, key: token}`,
			DNS01Solver{Provider: DNS01Cloudflare, Settings: map[string]string{}, Secrets: refs("apiTokenSecretRef", "cf", "token")}},
		{"cloudflare key and email", `
cloudflare:
  email: ops@example.com
  apiKeySecretRef: {name: cf, key: api-key}`,
			DNS01Solver{Provider: DNS01Cloudflare, Settings: map[string]string{"email": "ops@example.com"}, Secrets: refs("apiKeySecretRef", "cf", "api-key")}},
		{"route53", `
route53:
  region: eu-west-1
  hostedZoneID: Z123
  role: arn:aws:iam::1:role/dns
  accessKeyIDSecretRef: {name: aws, key: id}
  secretAccessKeySecretRef: {name: aws, key: secret}`,
			DNS01Solver{Provider: DNS01Route53, Settings: map[string]string{"region": "eu-west-1", "hostedZoneID": "Z123", "role": "arn:aws:iam::1:role/dns"},
				Secrets: refs("accessKeyIDSecretRef", "aws", "id", "secretAccessKeySecretRef", "aws", "secret")}},
		{"route53 with the agent's own identity", `
route53:
  region: eu-west-1`,
			DNS01Solver{Provider: DNS01Route53, Settings: map[string]string{"region": "eu-west-1"}, Secrets: map[string]SecretKeySelector{}}},
		{"digitalocean", `
digitalocean:
  tokenSecretRef: {name: do, key: token}`,
			DNS01Solver{Provider: DNS01DigitalOcean, Settings: map[string]string{}, Secrets: refs("tokenSecretRef", "do", "token")}},
		{"rfc2136", `
rfc2136:
  nameserver: 192.0.2.53:5353
  tsigKeyName: certsync
  tsigAlgorithm: HMACSHA256
  tsigSecretSecretRef: {name: tsig, key: secret}`,
			DNS01Solver{Provider: DNS01RFC2136, Settings: map[string]string{"nameserver": "192.0.2.53:5353", "tsigKeyName": "certsync", "tsigAlgorithm": "HMACSHA256"}, Secrets: refs("tsigSecretSecretRef", "tsig", "secret")}},
		{"rfc2136 unsigned, bracketed IPv6 without port", `
rfc2136:
  nameserver: "[2001:db8::53]"`,
			DNS01Solver{Provider: DNS01RFC2136, Settings: map[string]string{"nameserver": "[2001:db8::53]"}, Secrets: map[string]SecretKeySelector{}}},
		{"azureDNS service principal", `
azureDNS:
  clientID: c
  tenantID: t
  subscriptionID: s
  resourceGroupName: rg
  hostedZoneName: example.com
  environment: AzureUSGovernmentCloud
  clientSecretSecretRef: {name: azure, key: secret}`,
			DNS01Solver{Provider: DNS01AzureDNS, Settings: map[string]string{"clientID": "c", "tenantID": "t", "subscriptionID": "s", "resourceGroupName": "rg", "hostedZoneName": "example.com", "environment": "AzureUSGovernmentCloud"},
				Secrets: refs("clientSecretSecretRef", "azure", "secret")}},
		{"cloudDNS", `
cloudDNS:
  project: my-project
  hostedZoneName: zone
  serviceAccountSecretRef: {name: gcp, key: key.json}`,
			DNS01Solver{Provider: DNS01CloudDNS, Settings: map[string]string{"project": "my-project", "hostedZoneName": "zone"}, Secrets: refs("serviceAccountSecretRef", "gcp", "key.json")}},
		{"acmeDNS", `
acmeDNS:
  host: https://auth.example.org
  accountSecretRef: {name: acme-dns, key: acmedns.json}`,
			DNS01Solver{Provider: DNS01AcmeDNS, Settings: map[string]string{"host": "https://auth.example.org"}, Secrets: refs("accountSecretRef", "acme-dns", "acmedns.json")}},
		{"akamai", `
akamai:
  serviceConsumerDomain: akab.example.net
  clientTokenSecretRef: {name: akamai, key: client-token}
  clientSecretSecretRef: {name: akamai, key: client-secret}
  accessTokenSecretRef: {name: akamai, key: access-token}`,
			DNS01Solver{Provider: DNS01Akamai, Settings: map[string]string{"serviceConsumerDomain": "akab.example.net"},
				Secrets: refs("clientTokenSecretRef", "akamai", "client-token", "clientSecretSecretRef", "akamai", "client-secret", "accessTokenSecretRef", "akamai", "access-token")}},
		{"webhook names a lego provider", `
webhook:
  groupName: acme.example.com
  solverName: ovh`,
			DNS01Solver{Provider: DNS01Webhook, SolverName: "ovh", Settings: map[string]string{"groupName": "acme.example.com"}, Secrets: map[string]SecretKeySelector{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, problems := parseOneIssuer(t, dns01Issuer(tt.block))
			if len(problems) > 0 || iss == nil {
				t.Fatalf("problems: %v", problems)
			}
			if got := *iss.ACME.Solvers[0].DNS01; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Problems point at the offending field's value (a missing field: where
// its block's content starts), or at its key when the field itself is
// refused (an unknown provider or field, webhook.config), as for
// Certificates.
func TestParseDNS01Problems(t *testing.T) {
	tests := []struct {
		name    string
		block   string
		wantAt  string // "line:column"
		wantMsg string
	}{
		{"webhook config would configure the agent", `
webhook:
  solverName: exec
  config:
    EXEC_PATH: /bin/sh`, "14:11", "webhook.config would configure the agent's process from the repository; set the provider's variables in the agent's environment instead"},
		{"webhook without solverName", `
webhook:
  groupName: acme.example.com`, "13:11", "webhook.solverName: is required"},
		{"unknown provider", `
godaddy:
  apiKey: x`, "12:9", "unknown DNS-01 provider"},
		{"two providers", `
cloudflare: {}
route53: {}`, "12:9", "set exactly one DNS provider"},
		{"unknown field names the field", `
cloudflare:
  apiToken: plain-text-token
  apiTokenSecretRef: {name: cf, key: token}`, "13:11", "cloudflare.apiToken: unknown field of the cloudflare provider"},
		{"secret ref without name", `
digitalocean:
  tokenSecretRef: {key: token}`, "13:27", "tokenSecretRef.name: is required"},
		{"secret ref without key (cert-manager requires it)", `
digitalocean:
  tokenSecretRef:
    name: do`, "14:13", "tokenSecretRef.key: is required"},
		{"secret ref with an unknown field", `
digitalocean:
  tokenSecretRef: {name: do, key: token, namespace: kube-system}`, "13:50", "tokenSecretRef.namespace: unknown field"},
		{"secret ref is not a mapping", `
digitalocean:
  tokenSecretRef: do-token`, "13:27", "must be a mapping with name and key"},
		{"required secret ref missing", `
digitalocean: {}`, "12:23", "digitalocean.tokenSecretRef: is required"},
		{"setting is not a single value", `
cloudflare:
  email: [a, b]
  apiKeySecretRef: {name: cf, key: k}`, "13:18", "cloudflare.email: must be a single value"},
		{"cloudflare both credentials", `
cloudflare:
  apiKeySecretRef: {name: cf, key: k}
  apiTokenSecretRef: {name: cf, key: t}`, "13:11", "cannot both be specified"},
		{"cloudflare key without email", `
cloudflare:
  apiKeySecretRef: {name: cf, key: k}`, "13:11", "cloudflare.email: is required with apiKeySecretRef"},
		{"route53 kubernetes auth", `
route53:
  region: eu-west-1
  auth:
    kubernetes: {serviceAccountRef: {name: certsync}}`, "14:11", "route53.auth: Kubernetes ServiceAccount tokens are not supported"},
		{"route53 key ID without secret", `
route53:
  accessKeyID: AKIA`, "13:11", "secretAccessKeySecretRef: is required"},
		{"rfc2136 without nameserver", `
rfc2136:
  tsigKeyName: k`, "13:11", "rfc2136.nameserver: is required"},
		{"rfc2136 bad nameserver", `
rfc2136:
  nameserver: "2001:db8::53"`, "13:23", "enclose an IPv6 address in brackets"},
		{"rfc2136 key name without secret", `
rfc2136:
  nameserver: ns.example.com
  tsigKeyName: k
  tsigAlgorithm: HMACSHA256`, "13:11", "tsigSecretSecretRef: is required with tsigKeyName"},
		{"rfc2136 cert-manager's default HMACMD5", `
rfc2136:
  nameserver: ns.example.com
  tsigKeyName: k
  tsigSecretSecretRef: {name: tsig, key: secret}`, "13:11", "HMACMD5 (cert-manager's default when tsigAlgorithm is unset) is not supported"},
		{"rfc2136 unknown algorithm", `
rfc2136:
  nameserver: ns.example.com
  tsigAlgorithm: HMACSHA3`, "14:26", `"HMACSHA3" is not one of`},
		{"rfc2136 over TCP", `
rfc2136:
  nameserver: ns.example.com
  protocol: tcp`, "14:21", "tcp is not supported by certsync"},
		{"azureDNS incomplete service principal", `
azureDNS:
  clientID: c
  subscriptionID: s
  resourceGroupName: rg`, "13:11", "azureDNS.tenantID: is required with a service principal"},
		{"azureDNS managed identity", `
azureDNS:
  subscriptionID: s
  resourceGroupName: rg
  managedIdentity: {clientID: c}`, "15:11", "azureDNS.managedIdentity: is not supported by certsync"},
		{"azureDNS German cloud", `
azureDNS:
  subscriptionID: s
  resourceGroupName: rg
  environment: AzureGermanCloud`, "15:24", `"AzureGermanCloud" is not one of`},
		{"cloudDNS without project", `
cloudDNS:
  hostedZoneName: zone`, "13:11", "cloudDNS.project: is required"},
		{"acmeDNS without account", `
acmeDNS:
  host: https://auth.example.org`, "13:11", "acmeDNS.accountSecretRef: is required"},
		{"akamai without access token", `
akamai:
  serviceConsumerDomain: akab.example.net
  clientTokenSecretRef: {name: akamai, key: client-token}
  clientSecretSecretRef: {name: akamai, key: client-secret}`, "13:11", "akamai.accessTokenSecretRef: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, problems := parseOneIssuer(t, dns01Issuer(tt.block))
			if iss != nil || len(problems) != 1 {
				t.Fatalf("issuer %v, problems %v: want one problem", iss, problems)
			}
			p := problems[0]
			if at := fmt.Sprintf("%d:%d", p.Source.Line, p.Source.Column); at != tt.wantAt || !strings.Contains(p.Error(), tt.wantMsg) {
				t.Errorf("problem %q at %s, want %q at %s", p.Error(), at, tt.wantMsg, tt.wantAt)
			}
			if !strings.HasPrefix(p.Error(), "issuer.yaml:") || !strings.Contains(p.Error(), "spec.acme.solvers[0].dns01") {
				t.Errorf("problem %q does not name the file and the field", p.Error())
			}
		})
	}
}

func TestParseExternalAccountBinding(t *testing.T) {
	manifest := func(eab string) string {
		return `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: zerossl
spec:
  acme:
    server: https://acme.zerossl.com/v2/DV90
    privateKeySecretRef: {name: acct}
    externalAccountBinding:
` + indent(eab, "      ") + `    solvers:
    - http01: {ingress: {}}
`
	}
	tests := []struct {
		name    string
		eab     string
		want    *ExternalAccountBinding
		wantAt  string // "line:column"
		wantMsg string
	}{
		{name: "key from a Secret", eab: "keyID: kid-1\nkeySecretRef: {name: zerossl-eab, key: secret}\nkeyAlgorithm: HS256",
			want: &ExternalAccountBinding{KeyID: "kid-1", KeySecretRef: SecretKeySelector{Name: "zerossl-eab", Key: "secret"}, KeyAlgorithm: "HS256"}},
		{name: "key is required (cert-manager has no default)", eab: "keyID: kid-1\nkeySecretRef: {name: zerossl-eab}", wantAt: "11:21", wantMsg: "externalAccountBinding.keySecretRef.key: is required"},
		{name: "no keyID", eab: "keySecretRef: {name: zerossl-eab, key: secret}", wantAt: "10:7", wantMsg: "externalAccountBinding.keyID: is required"},
		{name: "no keySecretRef", eab: "keyID: kid-1", wantAt: "10:7", wantMsg: "externalAccountBinding.keySecretRef: is required"},
		{name: "bad keyAlgorithm", eab: "keyID: kid-1\nkeySecretRef: {name: e, key: k}\nkeyAlgorithm: RS256", wantAt: "12:21", wantMsg: `"RS256" is not one of HS256, HS384, HS512`},
		{name: "unknown field", eab: "keyID: kid-1\nkeySecretRef: {name: e, key: k}\nkeySecret: plain", wantAt: "12:7", wantMsg: "externalAccountBinding.keySecret: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, problems := parseOneIssuer(t, manifest(tt.eab))
			if tt.want != nil {
				if len(problems) > 0 || iss == nil {
					t.Fatalf("problems: %v", problems)
				}
				if !reflect.DeepEqual(iss.ACME.ExternalAccountBinding, tt.want) {
					t.Errorf("got %+v, want %+v", iss.ACME.ExternalAccountBinding, tt.want)
				}
				return
			}
			if len(problems) != 1 || fmt.Sprintf("%d:%d", problems[0].Source.Line, problems[0].Source.Column) != tt.wantAt || !strings.Contains(problems[0].Error(), tt.wantMsg) {
				t.Fatalf("problems %v, want %q at %s", problems, tt.wantMsg, tt.wantAt)
			}
		})
	}
}

func TestSecretNamespace(t *testing.T) {
	tests := []struct {
		iss  Issuer
		want string
	}{
		{Issuer{Kind: KindIssuer, Namespace: "team-a", Name: "le"}, "team-a"},
		{Issuer{Kind: KindClusterIssuer, Name: "le"}, DefaultClusterResourceNamespace},
	}
	for _, tt := range tests {
		if got := tt.iss.SecretNamespace(); got != tt.want {
			t.Errorf("%s: SecretNamespace() = %q, want %q", tt.iss.Key(), got, tt.want)
		}
	}
}
