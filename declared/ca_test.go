package declared

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// privateIssuer is a ClusterIssuer named root whose spec is block,
// written from line 5 on at the indentation of the issuer type.
func privateIssuer(block string) string {
	return "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: root}\nspec:\n" + indent(block, "  ")
}

func TestParseCAAndSelfSignedIssuers(t *testing.T) {
	tests := []struct {
		name       string
		block      string
		selfSigned *SelfSignedIssuer
		ca         *CAIssuer
		at         string // "line:column" of the problem, when one is wanted
		err        string // substring of the problem
	}{
		{name: "selfSigned", block: "selfSigned: {}", selfSigned: &SelfSignedIssuer{}},
		{name: "selfSigned with CRL distribution points", block: `
selfSigned:
  crlDistributionPoints: [http://crl.example.com/root.crl]`,
			selfSigned: &SelfSignedIssuer{CRLDistributionPoints: []string{"http://crl.example.com/root.crl"}}},
		{name: "ca", block: "ca: {secretName: root-ca}", ca: &CAIssuer{SecretName: "root-ca"}},
		{name: "ca with every URL", block: `
ca:
  secretName: root-ca
  crlDistributionPoints: [http://crl.example.com/ca.crl]
  ocspServers: [http://ocsp.example.com]
  issuingCertificateURLs: [http://ca.example.com/ca.crt]`,
			ca: &CAIssuer{SecretName: "root-ca", CRLDistributionPoints: []string{"http://crl.example.com/ca.crl"},
				OCSPServers: []string{"http://ocsp.example.com"}, IssuingCertificateURLs: []string{"http://ca.example.com/ca.crt"}}},
		{name: "ca without secretName", block: "ca: {}", at: "5:7", err: "spec.ca.secretName: is required"},
		{name: "ca with a bad Secret name", block: "ca: {secretName: Root_CA}", at: "5:20", err: `spec.ca.secretName: "Root_CA" is not a valid Secret name`},
		{name: "ca with an empty OCSP server", block: `
ca:
  secretName: root-ca
  ocspServers: [""]`, at: "7:19", err: "spec.ca.ocspServers[0]: must be a valid URL"},
		{name: "ca with an empty issuing certificate URL", block: `
ca:
  secretName: root-ca
  issuingCertificateURLs: [http://ca.example.com/ca.crt, ""]`, at: "7:60", err: "spec.ca.issuingCertificateURLs[1]: must be a valid URL"},
		{name: "ca with a misspelt field", block: `
ca:
  secretname: root-ca`, at: "6:5", err: "spec.ca.secretname: unknown field"},
		{name: "selfSigned with an unknown field", block: `
selfSigned:
  isCA: true`, at: "6:5", err: "spec.selfSigned.isCA: unknown field"},
		{name: "vault", block: "vault: {server: https://vault.example.com, path: pki/sign/web}", at: "5:3", err: "spec.vault: Vault issuers are not supported by certsync"},
		{name: "venafi", block: "venafi: {zone: z}", at: "5:3", err: "spec.venafi: Venafi issuers are not supported by certsync"},
		{name: "two issuer types", block: "selfSigned: {}\nca: {secretName: root-ca}", at: "5:3", err: "may not specify more than one issuer type"},
		{name: "no issuer type", block: "{}", at: "5:3", err: "at least one issuer must be configured: acme, ca or selfSigned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, problems := parseOneIssuer(t, privateIssuer(tt.block))
			if tt.err != "" {
				if iss != nil || len(problems) != 1 || !strings.Contains(problems[0].Error(), tt.err) || fmt.Sprintf("%d:%d", problems[0].Source.Line, problems[0].Source.Column) != tt.at {
					t.Fatalf("issuer %v, problems %v: want one problem at %s with %q", iss, problems, tt.at, tt.err)
				}
				return
			}
			if iss == nil || len(problems) != 0 {
				t.Fatalf("problems %v", problems)
			}
			if iss.ACME != nil || !reflect.DeepEqual(iss.SelfSigned, tt.selfSigned) || !reflect.DeepEqual(iss.CA, tt.ca) {
				t.Errorf("issuer %+v: selfSigned %+v, ca %+v", iss, iss.SelfSigned, iss.CA)
			}
			if iss.SecretNamespace() != DefaultClusterResourceNamespace {
				t.Errorf("SecretNamespace = %q", iss.SecretNamespace())
			}
		})
	}
}

// The bootstrap from cert-manager's documentation: a selfSigned
// ClusterIssuer signs an isCA Certificate whose Secret backs a ca
// ClusterIssuer.
const bootstrapIssuers = `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: selfsigned}
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: root-ca}
spec:
  ca: {secretName: root-ca}
---
` + flowIssuer

func TestIsCACertificates(t *testing.T) {
	cert := func(issuer, spec string) string {
		return "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: c, namespace: cert-manager}\nspec:\n  secretName: c\n  issuerRef: {kind: ClusterIssuer, name: " + issuer + "}\n" + indent(spec, "  ")
	}
	tests := []struct {
		name, doc string
		isCA      bool
		err       string
	}{
		{name: "isCA from a selfSigned issuer, commonName only", doc: cert("selfsigned", "isCA: true\ncommonName: My Root CA"), isCA: true},
		{name: "isCA from a ca issuer (an intermediate)", doc: cert("root-ca", "isCA: true\ncommonName: intermediate.example.com"), isCA: true},
		{name: "a leaf from a ca issuer: commonName need not be a dnsName", doc: cert("root-ca", "commonName: web\ndnsNames: [web.example.com]")},
		{name: "isCA from an ACME issuer", doc: cert("le", "isCA: true\ndnsNames: [ca.example.com]"), err: "spec.isCA: ClusterIssuer/le is an ACME issuer, and ACME CAs do not issue CA certificates"},
		{name: "ACME's commonName rule still applies to ACME", doc: cert("le", "commonName: web\ndnsNames: [web.example.com]"), err: "ACME requires the commonName to also be present"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := Parse([]File{{Path: "issuers.yaml", Content: []byte(bootstrapIssuers)}, {Path: "cert.yaml", Content: []byte(tt.doc)}})
			if tt.err != "" {
				if len(set.Certificates) != 0 || len(set.Problems) != 1 || !strings.Contains(set.Problems[0].Error(), tt.err) {
					t.Fatalf("certificates %v, problems %v: want %q", set.Certificates, set.Problems, tt.err)
				}
				return
			}
			if len(set.Problems) != 0 || len(set.Certificates) != 1 || len(set.Issuers) != 3 {
				t.Fatalf("problems %v, certificates %d, issuers %d", set.Problems, len(set.Certificates), len(set.Issuers))
			}
			if c := set.Certificates[0]; c.IsCA != tt.isCA {
				t.Errorf("IsCA = %v, want %v", c.IsCA, tt.isCA)
			}
		})
	}
}

// A change of isCA re-issues (the spec hash changes); a certificate that
// never set it keeps the hash it had before the field existed.
func TestSpecHashIsCA(t *testing.T) {
	c := Certificate{CommonName: "root", IssuerRef: IssuerRef{Name: "selfsigned", Kind: KindClusterIssuer},
		Duration: DefaultDuration, PrivateKey: KeySpec{Algorithm: RSA, Size: 2048}}
	leaf := c.SpecHash()
	c.IsCA = true
	if c.SpecHash() == leaf {
		t.Error("isCA does not change the spec hash")
	}
	// The hash of a certificate without isCA, as every earlier release
	// recorded it: a change here would re-issue every committed certificate.
	if want := "7ba3d29b287780b3"; leaf != want {
		t.Errorf("hash without isCA = %s, want %s as before isCA existed", leaf, want)
	}
}
