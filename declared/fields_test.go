package declared

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fieldIssuers are the issuers of the field tests: a selfSigned one that
// signs anything, an ACME one validating over HTTP-01 only, and an ACME
// one validating over DNS-01 only.
const fieldIssuers = `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: private}
spec: {selfSigned: {}}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: acme-http}
spec:
  acme:
    server: https://acme.example/dir
    privateKeySecretRef: {name: acme-http-account}
    solvers: [{http01: {}}]
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: acme-dns}
spec:
  acme:
    server: https://acme.example/dir
    privateKeySecretRef: {name: acme-dns-account}
    solvers: [{dns01: {webhook: {solverName: httpreq}}}]
`

// fieldsCert is Certificate shop/c of ClusterIssuer issuer; spec's first
// line is line 7 of the document.
func fieldsCert(issuer, spec string) string {
	return "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: c, namespace: shop}\nspec:\n" +
		"  secretName: c-tls\n  issuerRef: {kind: ClusterIssuer, name: " + issuer + "}\n" + indent(strings.TrimPrefix(spec, "\n"), "  ")
}

func parseFields(doc string) Set {
	return Parse([]File{{Path: "issuers.yaml", Content: []byte(fieldIssuers)}, {Path: "c.yaml", Content: []byte(doc)}})
}

// TestCertificateFields reads every field of cert-manager's Certificate
// spec that shapes the request or the Secret, with its defaults.
func TestCertificateFields(t *testing.T) {
	tests := []struct {
		name, issuer, spec string
		check              func(t *testing.T, c Certificate)
	}{
		{name: "every field, for a private CA", issuer: "private", spec: `
commonName: Example Intermediate
dnsNames: [ca.example.com]
ipAddresses: [10.0.0.1, "2001:db8::1"]
uris: [spiffe://example.com/ns/shop/sa/web]
emailAddresses: [pki@example.com]
otherNames:
- oid: 1.3.6.1.4.1.311.20.2.3
  utf8Value: upn@example.com
subject:
  organizations: [Example Ltd]
  countries: [NL]
  organizationalUnits: [Platform]
  localities: [Amsterdam]
  provinces: [Noord-Holland]
  streetAddresses: ["Dam 1, Centrum"]
  postalCodes: [1012 JS]
  serialNumber: "42"
isCA: true
usages: [cert sign, crl sign, digital signature]
encodeUsagesInRequest: false
nameConstraints:
  critical: true
  permitted: {dnsDomains: [example.com], ipRanges: [10.0.0.0/8]}
  excluded: {emailAddresses: [evil.example.com], uriDomains: [.evil.example.com]}
additionalOutputFormats: [{type: CombinedPEM}, {type: DER}]
keystores:
  pkcs12: {create: true, passwordSecretRef: {name: p12-password, key: password}}
  jks: {create: true, password: changeit}
revisionHistoryLimit: 3
`, check: func(t *testing.T, c Certificate) {
			want := c
			want.IPAddresses = []string{"10.0.0.1", "2001:db8::1"}
			want.URIs = []string{"spiffe://example.com/ns/shop/sa/web"}
			want.EmailAddresses = []string{"pki@example.com"}
			want.OtherNames = []OtherName{{OID: "1.3.6.1.4.1.311.20.2.3", UTF8Value: "upn@example.com"}}
			want.Subject = Subject{Organizations: []string{"Example Ltd"}, Countries: []string{"NL"}, OrganizationalUnits: []string{"Platform"},
				Localities: []string{"Amsterdam"}, Provinces: []string{"Noord-Holland"}, StreetAddresses: []string{"Dam 1, Centrum"},
				PostalCodes: []string{"1012 JS"}, SerialNumber: "42"}
			want.Usages = []string{"cert sign", "crl sign", "digital signature"}
			want.UsagesNotInRequest = true
			want.NameConstraints = &NameConstraints{Critical: true,
				Permitted: &NameConstraintItem{DNSDomains: []string{"example.com"}, IPRanges: []string{"10.0.0.0/8"}},
				Excluded:  &NameConstraintItem{EmailAddresses: []string{"evil.example.com"}, URIDomains: []string{".evil.example.com"}}}
			want.AdditionalOutputFormats = []string{OutputCombinedPEM, OutputDER}
			want.Keystores = Keystores{
				PKCS12: &PKCS12Keystore{Create: true, Profile: PKCS12LegacyRC2, Password: KeystorePassword{SecretRef: SecretKeySelector{Name: "p12-password", Key: "password"}}},
				JKS:    &JKSKeystore{Create: true, Alias: DefaultJKSAlias, Password: KeystorePassword{Literal: "changeit"}},
			}
			want.RevisionHistoryLimit = 3
			if !reflect.DeepEqual(c, want) || !c.IsCA {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		}},
		{name: "literalSubject: its CN is the name", issuer: "private", spec: `literalSubject: "CN=web,OU=Platform,O=Example\\, Inc.,DC=example,DC=com"`,
			check: func(t *testing.T, c Certificate) {
				if c.LiteralSubject != `CN=web,OU=Platform,O=Example\, Inc.,DC=example,DC=com` || c.CommonName != "" {
					t.Errorf("literalSubject %q, commonName %q", c.LiteralSubject, c.CommonName)
				}
			}},
		{name: "keystore options", issuer: "private", spec: `
commonName: web
keystores:
  pkcs12: {create: true, profile: Modern2023, password: s3cret}
  jks: {create: false, alias: Web, passwordSecretRef: {name: jks, key: pw}}
`, check: func(t *testing.T, c Certificate) {
			p, j := c.Keystores.PKCS12, c.Keystores.JKS
			if p == nil || p.Profile != PKCS12Modern2023 || p.Password.Literal != "s3cret" || j == nil || j.Create || j.Alias != "Web" {
				t.Errorf("keystores %+v %+v", p, j)
			}
		}},
		{name: "ACME: IP addresses over HTTP-01, an IP commonName among them", issuer: "acme-http", spec: `
commonName: 192.0.2.10
ipAddresses: [192.0.2.10, "2001:db8::10"]
usages: [digital signature, key encipherment, server auth, signing]
`, check: func(t *testing.T, c Certificate) {
			if len(c.IPAddresses) != 2 || len(c.Usages) != 4 {
				t.Errorf("certificate %+v", c)
			}
		}},
		{name: "emailAddresses alone are a name", issuer: "private", spec: "emailAddresses: [ops@example.com]\nusages: [email protection, digital signature]",
			check: func(t *testing.T, c Certificate) {
				if len(c.EmailAddresses) != 1 {
					t.Errorf("emails %v", c.EmailAddresses)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parseFields(fieldsCert(tt.issuer, tt.spec))
			if len(set.Problems) != 0 || len(set.Certificates) != 1 {
				t.Fatalf("problems %v, %d certificates", set.Problems, len(set.Certificates))
			}
			tt.check(t, set.Certificates[0])
		})
	}
}

// TestCertificateFieldRules checks each rule: cert-manager's webhook
// message where it has one, at the line and column of the field.
func TestCertificateFieldRules(t *testing.T) {
	const (
		keystoresBoth  = "exactly one of passwordSecretRef and password must be provided for %s keystores; cannot set both"
		keystoresNone  = "must set exactly one of passwordSecretRef and password must for %s keystores"
		keystoresEmpty = "literal password cannot be empty if set on %s keystores"
	)
	tests := []struct {
		name, issuer, spec string
		at, msg            string // "c.yaml:line:column", a substring of the problem
	}{
		// Names.
		{"no name at all", "private", "subject: {organizations: [Example]}",
			"c.yaml:5:3", "spec: at least one of commonName (from the commonName field or from a literalSubject), dnsNames, emailSANs, ipAddresses, otherNames, or uriSANs must be set"},
		{"bad IP address", "private", "ipAddresses: [10.0.0.1, 10.0.0.256]",
			"c.yaml:7:27", `spec.ipAddresses[1]: "10.0.0.256": invalid IP address`},
		{"IP with a zone", "private", "ipAddresses:\n- 10.0.0.1\n- fe80::1%eth0",
			"c.yaml:9:5", `spec.ipAddresses[1]: "fe80::1%eth0": invalid IP address`},
		{"relative URI", "private", "uris:\n- web/api",
			"c.yaml:8:5", `spec.uris[0]: "web/api": invalid URI: a URI SAN must be absolute`},
		{"URI with an empty host label", "private", "uris:\n- https://a..example.com/",
			"c.yaml:8:5", `the host "a..example.com" has an empty label`},
		{"non-ASCII URI", "private", "uris:\n- spiffe://exämple.com/web",
			"c.yaml:8:5", "cannot be encoded as an IA5String"},
		{"email with a display name", "private", "emailAddresses:\n- Ops <ops@example.com>",
			"c.yaml:8:5", `spec.emailAddresses[0]: "Ops <ops@example.com>": invalid email address: make sure the supplied value only contains the email address itself`},
		{"not an email", "private", "emailAddresses:\n- ops",
			"c.yaml:8:5", `spec.emailAddresses[0]: "ops": invalid email address: mail: missing '@' or angle-addr`},
		{"non-ASCII email", "private", "emailAddresses:\n- jürgen@example.com",
			"c.yaml:8:5", "cannot be encoded as an IA5String"},
		{"otherName without oid", "private", "otherNames:\n- utf8Value: upn@example.com",
			"c.yaml:8:5", "spec.otherNames[0].oid: must be specified"},
		{"otherName with a bad oid", "private", "otherNames:\n- oid: 1.3.six\n  utf8Value: x",
			"c.yaml:8:10", `spec.otherNames[0].oid: "1.3.six": invalid oid syntax`},
		{"otherName without value", "private", "otherNames:\n- oid: 1.3.6.1.4.1.311.20.2.3",
			"c.yaml:8:5", "spec.otherNames[0].utf8Value: must be set to a valid non-empty UTF8 string"},
		{"too many IP addresses", "private", "ipAddresses: [" + strings.Repeat("10.0.0.1,", 100) + "10.0.0.1]",
			"c.yaml:7:3", "spec.ipAddresses: has 101 entries; a certificate may have at most 100"},
		{"IP commonName that is no IP SAN", "private", "commonName: 10.0.0.1\ndnsNames: [web.example.com]",
			"c.yaml:7:15", `spec.commonName: "10.0.0.1": is an IP address: IP addresses belong in spec.ipAddresses`},

		// Subject.
		{"literalSubject and commonName", "private", "commonName: web\nliteralSubject: CN=web",
			"c.yaml:7:3", "spec.commonName: When providing a `LiteralSubject` no `commonName` may be provided."},
		{"literalSubject and subject", "private", "literalSubject: CN=web\nsubject:\n  organizations: [Example]",
			"c.yaml:8:3", "spec.subject: When providing a `LiteralSubject` no `Subject` properties may be provided."},
		{"literalSubject that does not parse", "private", "literalSubject: CN=web,O",
			"c.yaml:7:19", `spec.literalSubject: "CN=web,O": DN ended with incomplete type, value pair`},
		{"literalSubject with an unknown type", "private", "literalSubject: cn=web",
			"c.yaml:7:19", "spec.literalSubject: Literal subject contains unrecognized key with value [web]"},
		{"literalSubject with an unescaped quote", "private", `literalSubject: 'CN=we"b'`,
			"c.yaml:7:19", "got unescaped character"},
		{"literalSubject CN too long", "private", "literalSubject: CN=" + strings.Repeat("a", 65),
			"c.yaml:7:19", "spec.literalSubject: its CN is 65 bytes long; a commonName may be at most 64"},

		// Usages.
		{"unknown usage", "private", "commonName: web\nusages:\n- server auth\n- serverauth",
			"c.yaml:10:5", `spec.usages[1]: "serverauth": unknown keyusage`},

		// Name constraints.
		{"name constraints without isCA", "private", "commonName: web\nnameConstraints:\n  permitted: {dnsDomains: [example.com]}",
			"c.yaml:9:5", "spec.nameConstraints: isCA should be true when nameConstraints is set"},
		{"name constraints without permitted or excluded", "private", "commonName: ca\nisCA: true\nnameConstraints:\n  critical: true",
			"c.yaml:10:5", "spec.nameConstraints: either permitted or excluded must be set"},
		{"name constraint not a CIDR", "private", "commonName: ca\nisCA: true\nnameConstraints:\n  excluded:\n    ipRanges:\n    - 10.0.0.0/8\n    - 10.0.0.1",
			"c.yaml:13:9", `spec.nameConstraints.excluded.ipRanges[1]: "10.0.0.1": invalid CIDR address`},
		{"non-ASCII name constraint", "private", "commonName: ca\nisCA: true\nnameConstraints:\n  permitted:\n    dnsDomains: [exämple.com]",
			"c.yaml:11:20", "spec.nameConstraints.permitted.dnsDomains[0]"},

		// Outputs.
		{"unknown output format", "private", "commonName: web\nadditionalOutputFormats:\n- type: PEM",
			"c.yaml:9:11", `spec.additionalOutputFormats[0].type: Unsupported value: "PEM": supported values: "DER", "CombinedPEM"`},
		{"output format twice", "private", "commonName: web\nadditionalOutputFormats:\n- type: DER\n- type: DER",
			"c.yaml:10:11", `spec.additionalOutputFormats[1].type: Duplicate value: "DER"`},
		{"pkcs12 with both passwords", "private", "commonName: web\nkeystores:\n  pkcs12:\n    create: true\n    password: a\n    passwordSecretRef: {name: p, key: k}",
			"c.yaml:10:7", "spec.keystores.pkcs12: " + fmt.Sprintf(keystoresBoth, "PKCS#12")},
		{"pkcs12 without password", "private", "commonName: web\nkeystores:\n  pkcs12:\n    create: true",
			"c.yaml:10:7", "spec.keystores.pkcs12: " + fmt.Sprintf(keystoresNone, "PKCS#12")},
		{"jks with an empty password", "private", "commonName: web\nkeystores:\n  jks:\n    create: true\n    password: \"\"",
			"c.yaml:11:17", "spec.keystores.jks.password: " + fmt.Sprintf(keystoresEmpty, "JKS")},
		{"jks with both passwords", "private", "commonName: web\nkeystores:\n  jks:\n    password: a\n    passwordSecretRef: {name: p, key: k}",
			"c.yaml:10:7", "spec.keystores.jks: " + fmt.Sprintf(keystoresBoth, "JKS")},
		{"password Secret without key", "private", "commonName: web\nkeystores:\n  pkcs12:\n    create: true\n    passwordSecretRef: {name: p12}",
			"c.yaml:11:26", "spec.keystores.pkcs12.passwordSecretRef: key is required"},
		{"password Secret with a bad name", "private", "commonName: web\nkeystores:\n  jks:\n    create: true\n    passwordSecretRef:\n      name: P12_pw\n      key: k",
			"c.yaml:12:15", `spec.keystores.jks.passwordSecretRef.name: "P12_pw" is not a valid Secret name`},
		{"unknown PKCS#12 profile", "private", "commonName: web\nkeystores:\n  pkcs12:\n    create: true\n    password: a\n    profile: Modern2020",
			"c.yaml:12:16", `spec.keystores.pkcs12.profile: Unsupported value: "Modern2020"`},
		{"revisionHistoryLimit 0", "private", "commonName: web\nrevisionHistoryLimit: 0",
			"c.yaml:8:25", "spec.revisionHistoryLimit: 0: must not be less than 1"},

		// What an ACME CA does not issue: the whole Certificate, at its document.
		{"ACME: URI SAN", "acme-http", "dnsNames: [web.example.com]\nuris: [spiffe://example.com/web]",
			"c.yaml:1:1", "spec.uris: ClusterIssuer/acme-http is an ACME issuer, and an ACME CA validates DNS names and IP addresses only: it cannot issue URI SANs; use a ca or selfSigned issuer for it"},
		{"ACME: email SAN", "acme-http", "dnsNames: [web.example.com]\nemailAddresses: [ops@example.com]",
			"c.yaml:1:1", "spec.emailAddresses: ClusterIssuer/acme-http is an ACME issuer, and an ACME CA validates DNS names and IP addresses only: it cannot issue email SANs"},
		{"ACME: otherName SAN", "acme-http", "dnsNames: [web.example.com]\notherNames: [{oid: 1.2.3.4, utf8Value: x}]",
			"c.yaml:1:1", "spec.otherNames: ClusterIssuer/acme-http is an ACME issuer"},
		{"ACME: literalSubject", "acme-http", "dnsNames: [web.example.com]\nliteralSubject: CN=web.example.com,O=Example",
			"c.yaml:1:1", "spec.literalSubject: ClusterIssuer/acme-http is an ACME issuer: the CA writes the subject itself, with at most the commonName, and would drop the rest"},
		{"ACME: subject", "acme-http", "dnsNames: [web.example.com]\nsubject: {organizations: [Example], countries: [NL]}",
			"c.yaml:1:1", "spec.subject: ClusterIssuer/acme-http is an ACME issuer: the CA would drop organizations, countries (an ACME CA issues domain-validated certificates whose subject holds at most the commonName; cert-manager sends them and Let's Encrypt ignores them)"},
		{"ACME: client auth", "acme-http", "dnsNames: [web.example.com]\nusages: [server auth, client auth]",
			"c.yaml:1:1", `spec.usages: "client auth": ClusterIssuer/acme-http is an ACME issuer, and the CA issues TLS server certificates with its own usages (digital signature, key encipherment, server auth): it would not honour this one`},
		{"ACME: IP address that only DNS-01 would serve", "acme-dns", "dnsNames: [web.example.com]\nipAddresses: [192.0.2.1]",
			"c.yaml:1:1", "192.0.2.1 is an IP address, which ACME validates over HTTP-01 only (RFC 8738), but the solver that selects it is dns01"},
		{"ACME: commonName in neither list", "acme-http", "commonName: www.example.com\ndnsNames: [web.example.com]\nipAddresses: [192.0.2.1]",
			"c.yaml:1:1", "ACME requires the commonName to also be present"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parseFields(fieldsCert(tt.issuer, tt.spec))
			wantOneProblem(t, set, tt.at, "Certificate shop/c: ", tt.msg)
			if len(set.Certificates) != 0 {
				t.Errorf("the Certificate was kept: %+v", set.Certificates)
			}
		})
	}
}

// TestSpecHashFields: every field that shapes the certificate changes the
// spec hash; what only shapes the Secret does not, and changes the
// outputs hash instead.
func TestSpecHashFields(t *testing.T) {
	base := Certificate{CommonName: "web", DNSNames: []string{"web.example.com"}, IssuerRef: IssuerRef{Name: "private", Kind: KindClusterIssuer},
		Duration: DefaultDuration, PrivateKey: KeySpec{Algorithm: RSA, Size: 2048}}
	h0 := base.SpecHash()
	for name, mod := range map[string]func(*Certificate){
		"ipAddresses":    func(c *Certificate) { c.IPAddresses = []string{"10.0.0.1"} },
		"uris":           func(c *Certificate) { c.URIs = []string{"spiffe://example.com/web"} },
		"emailAddresses": func(c *Certificate) { c.EmailAddresses = []string{"ops@example.com"} },
		"otherNames":     func(c *Certificate) { c.OtherNames = []OtherName{{OID: "1.2.3", UTF8Value: "x"}} },
		"subject":        func(c *Certificate) { c.Subject.Organizations = []string{"Example"} },
		"subject serial": func(c *Certificate) { c.Subject.SerialNumber = "1" },
		"literalSubject": func(c *Certificate) { c.CommonName, c.LiteralSubject = "", "CN=web" },
		"usages":         func(c *Certificate) { c.Usages = []string{"client auth"} },
		"nameConstraints": func(c *Certificate) {
			c.NameConstraints = &NameConstraints{Permitted: &NameConstraintItem{DNSDomains: []string{"example.com"}}}
		},
		"critical constrain": func(c *Certificate) { c.NameConstraints = &NameConstraints{Critical: true} },
	} {
		c := base
		mod(&c)
		if c.SpecHash() == h0 {
			t.Errorf("%s does not change the spec hash", name)
		}
	}
	for name, mod := range map[string]func(*Certificate){
		"default usages written":  func(c *Certificate) { c.Usages = []string{"key encipherment", "signing"} },
		"encodeUsagesInRequest":   func(c *Certificate) { c.UsagesNotInRequest = true },
		"revisionHistoryLimit":    func(c *Certificate) { c.RevisionHistoryLimit = 5 },
		"additionalOutputFormats": func(c *Certificate) { c.AdditionalOutputFormats = []string{OutputDER} },
		"keystores":               func(c *Certificate) { c.Keystores.JKS = &JKSKeystore{Create: true, Alias: "x"} },
	} {
		c := base
		mod(&c)
		if c.SpecHash() != h0 {
			t.Errorf("%s changes the spec hash", name)
		}
	}
	a, b := base, base
	a.IPAddresses, b.IPAddresses = []string{"10.0.0.1", "::ffff:10.0.0.2"}, []string{"10.0.0.2", "10.0.0.1"}
	if a.SpecHash() != b.SpecHash() {
		t.Error("the order or spelling of IP addresses changes the spec hash")
	}
	a.Usages, b.Usages = []string{"s/mime", "signing"}, []string{"digital signature", "email protection", "signing"}
	if a.SpecHash() != b.SpecHash() {
		t.Error("usage synonyms change the spec hash")
	}
}

func TestOutputsHash(t *testing.T) {
	c := Certificate{CommonName: "web"}
	if c.OutputsHash() != "" {
		t.Fatal("a certificate without extra outputs has an outputs hash")
	}
	c.Keystores.PKCS12 = &PKCS12Keystore{Create: false, Profile: PKCS12LegacyRC2, Password: KeystorePassword{Literal: "a"}}
	if c.OutputsHash() != "" {
		t.Error("a keystore that is not created counts")
	}
	seen := map[string]string{}
	for name, mod := range map[string]func(*Certificate){
		"DER":              func(c *Certificate) { c.AdditionalOutputFormats = []string{OutputDER} },
		"CombinedPEM":      func(c *Certificate) { c.AdditionalOutputFormats = []string{OutputCombinedPEM} },
		"pkcs12 literal a": func(c *Certificate) { c.Keystores.PKCS12.Create = true },
		"pkcs12 literal b": func(c *Certificate) { c.Keystores.PKCS12.Create, c.Keystores.PKCS12.Password.Literal = true, "b" },
		"pkcs12 modern": func(c *Certificate) {
			c.Keystores.PKCS12.Create, c.Keystores.PKCS12.Profile = true, PKCS12Modern2023
		},
		"pkcs12 Secret": func(c *Certificate) {
			c.Keystores.PKCS12.Create, c.Keystores.PKCS12.Password = true, KeystorePassword{SecretRef: SecretKeySelector{Name: "p", Key: "k"}}
		},
		"jks": func(c *Certificate) {
			c.Keystores.JKS = &JKSKeystore{Create: true, Alias: "certificate", Password: KeystorePassword{Literal: "a"}}
		},
	} {
		d := c
		p := *c.Keystores.PKCS12
		d.Keystores.PKCS12 = &p
		mod(&d)
		h := d.OutputsHash()
		if h == "" {
			t.Errorf("%s: no outputs hash", name)
		}
		if other, dup := seen[h]; dup {
			t.Errorf("%s and %s have the same outputs hash", name, other)
		}
		seen[h] = name
		if d.SpecHash() != c.SpecHash() {
			t.Errorf("%s changes the spec hash", name)
		}
	}
}

// A literal keystore password is never printed.
func TestKeystorePasswordIsNotPrinted(t *testing.T) {
	c := Certificate{Keystores: Keystores{JKS: &JKSKeystore{Create: true, Password: KeystorePassword{Literal: "hunter2-secret"}}}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{string(b), fmt.Sprintf("%v %+v %#v", *c.Keystores.JKS, *c.Keystores.JKS, *c.Keystores.JKS), c.OutputsHash()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("the password shows in %s", s)
		}
	}
}

// The shim reads cert-manager's subject and usages annotations into the
// Certificate, whose rules then apply.
func TestShimSubjectAndUsages(t *testing.T) {
	ing := ingressDoc("    cert-manager.io/cluster-issuer: private\n"+
		"    cert-manager.io/subject-organizations: '\"Example, Inc.\",Example Labs'\n"+
		"    cert-manager.io/subject-countries: NL\n"+
		"    cert-manager.io/subject-serialnumber: \"7\"\n"+
		"    cert-manager.io/usages: server auth, client auth\n", webTLS)
	set := Parse([]File{{Path: "issuers.yaml", Content: []byte(fieldIssuers)}, {Path: "ing.yaml", Content: []byte(ing)}})
	if len(set.Problems) != 0 || len(set.Certificates) != 1 {
		t.Fatalf("problems %v, certificates %v", set.Problems, set.Certificates)
	}
	c := set.Certificates[0]
	want := Subject{Organizations: []string{"Example, Inc.", "Example Labs"}, Countries: []string{"NL"}, SerialNumber: "7"}
	if !reflect.DeepEqual(c.Subject, want) || !reflect.DeepEqual(c.Usages, []string{"server auth", "client auth"}) {
		t.Errorf("subject %+v, usages %q", c.Subject, c.Usages)
	}
}
