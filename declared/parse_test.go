package declared

import (
	"strings"
	"testing"
	"time"
)

const issuerYAML = `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: letsencrypt
spec:
  acme:
    server: https://acme.example/dir
    email: ops@example.com
    privateKeySecretRef:
      name: letsencrypt-account
    solvers:
    - http01:
        ingress: {}
    - selector:
        dnsZones: [example.com]
      dns01:
        webhook:
          solverName: httpreq
`

func cert(name, ns, secret, extra string) string {
	return `apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  secretName: ` + secret + `
  issuerRef:
    name: letsencrypt
    kind: ClusterIssuer
` + extra
}

func TestParseDefaultsAndShape(t *testing.T) {
	set := Parse([]File{
		{Path: "issuers/le.yaml", Content: []byte(issuerYAML)},
		{Path: "certs/web.yaml", Content: []byte(cert("web", "shop", "web-tls", "  commonName: example.com\n  dnsNames: [example.com, \"*.example.com\"]\n") +
			"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")},
	})
	if len(set.Problems) != 0 {
		t.Fatalf("problems: %v", set.Problems)
	}
	if len(set.Certificates) != 1 || len(set.Issuers) != 1 {
		t.Fatalf("got %d certificates, %d issuers", len(set.Certificates), len(set.Issuers))
	}
	c := set.Certificates[0]
	if c.Duration != 90*24*time.Hour || c.PrivateKey.String() != "RSA-2048" || c.PrivateKey.RotationPolicy != RotateAlways {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.Source.String() != "certs/web.yaml:1:1" {
		t.Errorf("source = %s", c.Source)
	}
	iss := set.IssuerFor(&c)
	if iss == nil || iss.ACME.Solvers[1].DNS01.Provider != DNS01Webhook || iss.ACME.Solvers[1].DNS01.SolverName != "httpreq" {
		t.Fatalf("issuer not resolved or solver not parsed: %+v", iss)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		wantFile string // "path:line:column" the problem must name
		wantMsg  string
		wantOK   int // certificates that must still be parsed
	}{
		{
			name:     "malformed YAML",
			files:    map[string]string{"bad.yaml": "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: [\n"},
			wantFile: "bad.yaml:3", wantMsg: "malformed YAML: did not find expected node content", wantOK: 1,
		},
		{
			name:     "unknown issuer",
			files:    map[string]string{"c.yaml": strings.Replace(cert("x", "a", "x-tls", "  dnsNames: [x.example.com]\n"), "name: letsencrypt", "name: nope", 1)},
			wantFile: "c.yaml:1:1", wantMsg: "ClusterIssuer nope is not declared", wantOK: 1,
		},
		{
			name:     "commonName not in dnsNames",
			files:    map[string]string{"c.yaml": cert("x", "a", "x-tls", "  commonName: other.example.com\n  dnsNames: [x.example.com]\n")},
			wantFile: "c.yaml:1:1", wantMsg: "ACME requires the commonName to also be present in the list of dnsNames", wantOK: 1,
		},
		{
			name:     "bad DNS name points at its line",
			files:    map[string]string{"c.yaml": cert("x", "a", "x-tls", "  dnsNames:\n  - ok.example.com\n  - bad_name.example.com\n")},
			wantFile: "c.yaml:13:5", wantMsg: "spec.dnsNames[1]", wantOK: 1,
		},
		{
			name:     "wildcard in the middle",
			files:    map[string]string{"c.yaml": cert("x", "a", "x-tls", "  dnsNames: [a.*.example.com]\n")},
			wantFile: "c.yaml:11:14", wantMsg: "wildcard", wantOK: 1,
		},
		{
			name: "duplicate secretName",
			files: map[string]string{
				"c1.yaml": cert("x", "a", "same-tls", "  dnsNames: [x.example.com]\n"),
				"c2.yaml": cert("y", "a", "same-tls", "  dnsNames: [y.example.com]\n"),
			},
			wantFile: "c1.yaml:1:1", wantMsg: "spec.secretName a/same-tls is used by 2 Certificates", wantOK: 1,
		},
		{
			name:     "RSA too small",
			files:    map[string]string{"c.yaml": cert("x", "a", "x-tls", "  dnsNames: [x.example.com]\n  privateKey:\n    algorithm: RSA\n    size: 1024\n")},
			wantFile: "c.yaml:14:11", wantMsg: "between 2048 and 8192", wantOK: 1,
		},
		{
			name:     "renewBefore longer than duration",
			files:    map[string]string{"c.yaml": cert("x", "a", "x-tls", "  dnsNames: [x.example.com]\n  duration: 24h\n  renewBefore: 48h\n")},
			wantFile: "c.yaml:13:16", wantMsg: "must be shorter than the duration", wantOK: 1,
		},
		{
			name:     "bad duration",
			files:    map[string]string{"c.yaml": cert("x", "a", "x-tls", "  dnsNames: [x.example.com]\n  duration: 90 days\n")},
			wantFile: "c.yaml:12:13", wantMsg: "is not a duration", wantOK: 1,
		},
		{
			name:     "missing secretName",
			files:    map[string]string{"c.yaml": strings.Replace(cert("x", "a", "x-tls", "  dnsNames: [x.example.com]\n"), "  secretName: x-tls\n", "", 1)},
			wantFile: "c.yaml:7:3", wantMsg: "spec.secretName: is required", wantOK: 1,
		},
		{
			name:     "wrong apiVersion",
			files:    map[string]string{"c.yaml": strings.Replace(cert("x", "a", "x-tls", ""), "cert-manager.io/v1", "cert-manager.io/v1alpha2", 1)},
			wantFile: "c.yaml:1:13", wantMsg: "use cert-manager.io/v1", wantOK: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := []File{
				{Path: "issuer.yaml", Content: []byte(issuerYAML)},
				{Path: "good.yaml", Content: []byte(cert("good", "a", "good-tls", "  dnsNames: [good.example.com]\n"))},
			}
			for p, c := range tt.files {
				files = append(files, File{Path: p, Content: []byte(c)})
			}
			set := Parse(files)
			if len(set.Certificates) != tt.wantOK {
				t.Errorf("certificates parsed = %d, want %d (the good one must carry on)", len(set.Certificates), tt.wantOK)
			}
			if len(set.Problems) == 0 {
				t.Fatalf("no problem reported")
			}
			p := set.Problems[0]
			if p.Source.String() != tt.wantFile || !strings.Contains(p.Error(), tt.wantMsg) {
				t.Errorf("problem = %q at %s; want %q at %s", p.Error(), p.Source, tt.wantMsg, tt.wantFile)
			}
		})
	}
}

func TestIsManifestPath(t *testing.T) {
	skip := []string{"secrets/", "accounts/"}
	for p, want := range map[string]bool{
		"certs/a.yaml": true, "a.yml": true, ".sops.yaml": false, "secrets/default/a/b.yaml": false,
		"README.md": false, "accounts/clusterissuers/le.yaml": false,
	} {
		if got := IsManifestPath(p, skip); got != want {
			t.Errorf("IsManifestPath(%q) = %v", p, got)
		}
	}
}
