package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certsync/certsync/declared"
)

// signFromCSR is what a ca or selfSigned issuer does with the request:
// the subject and SANs Go parses, then ApplyRequested. The certificate is
// parsed back with crypto/x509.
func signFromCSR(t *testing.T, csr *x509.CertificateRequest, key any) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), RawSubject: csr.RawSubject, DNSNames: csr.DNSNames,
		IPAddresses: csr.IPAddresses, URIs: csr.URIs, EmailAddresses: csr.EmailAddresses, NotBefore: now, NotAfter: now.Add(time.Hour)}
	if err := ApplyRequested(tmpl, csr); err != nil {
		t.Fatalf("ApplyRequested: %v", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, csr.PublicKey, key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse the certificate: %v", err)
	}
	return cert
}

func extension(exts []pkix.Extension, id asn1.ObjectIdentifier) (pkix.Extension, bool) {
	for _, e := range exts {
		if e.Id.Equal(id) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}

// otherNames reads the otherName SANs (type-id → UTF8String value) of a
// subjectAltName extension.
func otherNames(t *testing.T, ext pkix.Extension) map[string]string {
	t.Helper()
	out := map[string]string{}
	in := cryptobyte.String(ext.Value)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, casn1.SEQUENCE) {
		t.Fatal("malformed SAN extension")
	}
	for !seq.Empty() {
		var v cryptobyte.String
		var tag casn1.Tag
		if !seq.ReadAnyASN1(&v, &tag) {
			t.Fatal("malformed GeneralName")
		}
		if tag != casn1.Tag(0).ContextSpecific().Constructed() {
			continue
		}
		var oid asn1.ObjectIdentifier
		var explicit, value cryptobyte.String
		if !v.ReadASN1ObjectIdentifier(&oid) || !v.ReadASN1(&explicit, casn1.Tag(0).ContextSpecific().Constructed()) ||
			!explicit.ReadASN1(&value, casn1.UTF8String) {
			t.Fatal("malformed otherName")
		}
		out[oid.String()] = string(value)
	}
	return out
}

func TestCSR(t *testing.T) {
	key, err := GenerateKey(declared.KeySpec{Algorithm: declared.ECDSA, Size: 256})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		c     declared.Certificate
		check func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate)
	}{
		{name: "ACME-like: CN and DNS names, cert-manager's default usages",
			c: declared.Certificate{CommonName: "a.example.com", DNSNames: []string{"a.example.com", "b.example.com"}},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				if csr.Subject.String() != "CN=a.example.com" || !slices.Equal(csr.DNSNames, []string{"a.example.com", "b.example.com"}) {
					t.Errorf("subject %s, names %v", csr.Subject, csr.DNSNames)
				}
				if san, _ := extension(csr.Extensions, oidSubjectAltName); san.Critical {
					t.Error("SAN critical next to a subject")
				}
				if _, ok := extension(csr.Extensions, oidExtKeyUsage); ok {
					t.Error("extended key usage without any asked for")
				}
				if _, ok := extension(csr.Extensions, oidBasicConstraints); ok {
					t.Error("basic constraints for a leaf")
				}
				if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || len(cert.ExtKeyUsage) != 0 || cert.IsCA {
					t.Errorf("usages %v %v, isCA %v", cert.KeyUsage, cert.ExtKeyUsage, cert.IsCA)
				}
			}},
		{name: "no subject: the SAN extension is critical",
			c: declared.Certificate{DNSNames: []string{"a.example.com"}},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				if san, ok := extension(csr.Extensions, oidSubjectAltName); !ok || !san.Critical {
					t.Error("SAN not critical under an empty subject")
				}
				if san, ok := extension(cert.Extensions, oidSubjectAltName); !ok || !san.Critical {
					t.Error("the certificate's SAN is not critical under an empty subject")
				}
			}},
		{name: "every SAN kind, in cert-manager's order",
			c: declared.Certificate{CommonName: "web", DNSNames: []string{"web.example.com"}, IPAddresses: []string{"10.0.0.1", "2001:db8::1", "::ffff:10.0.0.2"},
				URIs: []string{"spiffe://example.com/ns/shop/sa/web"}, EmailAddresses: []string{"ops@example.com"},
				OtherNames: []declared.OtherName{{OID: "1.3.6.1.4.1.311.20.2.3", UTF8Value: "upn@example.com"}, {OID: "1.2.3.4", UTF8Value: "ünïcode"}}},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				for _, got := range []struct {
					dns, email, uri []string
					ips             []net.IP
				}{{csr.DNSNames, csr.EmailAddresses, nil, csr.IPAddresses}, {cert.DNSNames, cert.EmailAddresses, nil, cert.IPAddresses}} {
					if !slices.Equal(got.dns, []string{"web.example.com"}) || !slices.Equal(got.email, []string{"ops@example.com"}) ||
						len(got.ips) != 3 || !got.ips[0].Equal(net.ParseIP("10.0.0.1")) || !got.ips[1].Equal(net.ParseIP("2001:db8::1")) || len(got.ips[2]) != 4 {
						t.Errorf("SANs %v %v %v", got.dns, got.email, got.ips)
					}
				}
				if len(csr.URIs) != 1 || csr.URIs[0].String() != "spiffe://example.com/ns/shop/sa/web" || len(cert.URIs) != 1 {
					t.Errorf("URIs %v %v", csr.URIs, cert.URIs)
				}
				san, _ := extension(cert.Extensions, oidSubjectAltName)
				want := map[string]string{"1.3.6.1.4.1.311.20.2.3": "upn@example.com", "1.2.3.4": "ünïcode"}
				if got := otherNames(t, san); !reflect.DeepEqual(got, want) {
					t.Errorf("otherNames %v, want %v", got, want)
				}
			}},
		{name: "subject attributes",
			c: declared.Certificate{CommonName: "web", DNSNames: []string{"web.example.com"}, Subject: declared.Subject{
				Organizations: []string{"Example, Inc."}, Countries: []string{"NL"}, OrganizationalUnits: []string{"Platform", "Web"},
				Localities: []string{"Amsterdam"}, Provinces: []string{"Noord-Holland"}, StreetAddresses: []string{"Dam 1"},
				PostalCodes: []string{"1012 JS"}, SerialNumber: "42"}},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				// Two OUs are one RDN, a DER SET: their order is DER's.
				for _, s := range []pkix.Name{csr.Subject, cert.Subject} {
					if s.CommonName != "web" || !slices.Equal(s.Organization, []string{"Example, Inc."}) || !slices.Equal(slices.Sorted(slices.Values(s.OrganizationalUnit)), []string{"Platform", "Web"}) ||
						!slices.Equal(s.Country, []string{"NL"}) || !slices.Equal(s.Locality, []string{"Amsterdam"}) || !slices.Equal(s.Province, []string{"Noord-Holland"}) ||
						!slices.Equal(s.StreetAddress, []string{"Dam 1"}) || !slices.Equal(s.PostalCode, []string{"1012 JS"}) || s.SerialNumber != "42" {
						t.Errorf("subject %+v", s)
					}
				}
			}},
		{name: "literal subject, in the order written",
			c: declared.Certificate{LiteralSubject: `CN=ldap-user,OU=People,DC=example,DC=com`},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				var seq pkix.RDNSequence
				if _, err := asn1.Unmarshal(cert.RawSubject, &seq); err != nil || len(seq) != 4 {
					t.Fatalf("subject %v: %v", seq, err)
				}
				// RFC 4514 writes the most specific RDN first; DER holds it last.
				if !seq[3][0].Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 3}) || seq[3][0].Value != "ldap-user" ||
					!seq[0][0].Type.Equal(asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}) || seq[0][0].Value != "com" {
					t.Errorf("subject %v", seq)
				}
				if csr.Subject.CommonName != "ldap-user" {
					t.Errorf("CN %q", csr.Subject.CommonName)
				}
			}},
		{name: "usages and extended usages",
			c: declared.Certificate{CommonName: "client", Usages: []string{"signing", "key agreement", "client auth", "server auth", "s/mime", "email protection"}},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				if ku, _ := extension(csr.Extensions, oidKeyUsage); !ku.Critical {
					t.Error("key usage not critical")
				}
				if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement {
					t.Errorf("key usage %b", cert.KeyUsage)
				}
				want := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageEmailProtection}
				if !slices.Equal(cert.ExtKeyUsage, want) {
					t.Errorf("extended key usage %v, want %v", cert.ExtKeyUsage, want)
				}
			}},
		{name: "encodeUsagesInRequest false: no usage extensions",
			c: declared.Certificate{CommonName: "web", Usages: []string{"server auth"}, UsagesNotInRequest: true},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				_, ku := extension(csr.Extensions, oidKeyUsage)
				_, eku := extension(csr.Extensions, oidExtKeyUsage)
				if ku || eku || cert.KeyUsage != 0 || len(cert.ExtKeyUsage) != 0 {
					t.Errorf("usages in the request: %v %v", ku, eku)
				}
			}},
		{name: "isCA with name constraints",
			c: declared.Certificate{CommonName: "Example Intermediate", IsCA: true, Usages: []string{"digital signature", "crl sign"},
				NameConstraints: &declared.NameConstraints{Critical: true,
					Permitted: &declared.NameConstraintItem{DNSDomains: []string{"example.com"}, IPRanges: []string{"10.0.0.0/8", "2001:db8::/32"}, EmailAddresses: []string{"example.com"}},
					Excluded:  &declared.NameConstraintItem{DNSDomains: []string{"evil.example.com"}, URIDomains: []string{".evil.example.com"}}}},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				if bc, ok := extension(csr.Extensions, oidBasicConstraints); !ok || !bc.Critical {
					t.Error("no critical basic constraints in the request")
				}
				if !cert.BasicConstraintsValid || !cert.IsCA || cert.MaxPathLen != -1 {
					t.Errorf("basic constraints %v %v %d", cert.BasicConstraintsValid, cert.IsCA, cert.MaxPathLen)
				}
				if cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature|x509.KeyUsageCRLSign {
					t.Errorf("key usage %b", cert.KeyUsage)
				}
				if !cert.PermittedDNSDomainsCritical || !slices.Equal(cert.PermittedDNSDomains, []string{"example.com"}) ||
					!slices.Equal(cert.PermittedEmailAddresses, []string{"example.com"}) || len(cert.PermittedIPRanges) != 2 ||
					cert.PermittedIPRanges[0].String() != "10.0.0.0/8" || cert.PermittedIPRanges[1].String() != "2001:db8::/32" ||
					!slices.Equal(cert.ExcludedDNSDomains, []string{"evil.example.com"}) || !slices.Equal(cert.ExcludedURIDomains, []string{".evil.example.com"}) {
					t.Errorf("name constraints %v %v %v %v | %v %v", cert.PermittedDNSDomains, cert.PermittedIPRanges, cert.PermittedEmailAddresses,
						cert.PermittedDNSDomainsCritical, cert.ExcludedDNSDomains, cert.ExcludedURIDomains)
				}
			}},
		{name: "empty name constraints: no extension, as cert-manager",
			c: declared.Certificate{CommonName: "ca", IsCA: true, NameConstraints: &declared.NameConstraints{Permitted: &declared.NameConstraintItem{}}},
			check: func(t *testing.T, csr *x509.CertificateRequest, cert *x509.Certificate) {
				if _, ok := extension(csr.Extensions, oidNameConstraints); ok {
					t.Error("an empty nameConstraints extension")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := CSR(&tt.c, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Fatalf("signature: %v", err)
			}
			tt.check(t, csr, signFromCSR(t, csr, key))
		})
	}
}

func TestCSRErrors(t *testing.T) {
	key, err := GenerateKey(declared.KeySpec{Algorithm: declared.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]declared.Certificate{
		"no names":             {},
		"non-ASCII URI":        {URIs: []string{"spiffe://exämple/x"}},
		"bad IP":               {IPAddresses: []string{"10.0.0.256"}},
		"bad otherName OID":    {OtherNames: []declared.OtherName{{OID: "1.x", UTF8Value: "v"}}},
		"unknown usage":        {CommonName: "x", Usages: []string{"everything"}},
		"bad literal subject":  {LiteralSubject: "CN=a,O"},
		"unknown literal type": {LiteralSubject: "cn=a"},
	} {
		if _, err := CSR(&c, key); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// KeyUsages is cert-manager's KeyUsagesForCertificateOrCertificateRequest.
func TestKeyUsages(t *testing.T) {
	tests := []struct {
		usages []string
		isCA   bool
		ku     x509.KeyUsage
		eku    []x509.ExtKeyUsage
	}{
		{nil, false, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, nil},
		{nil, true, x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, nil},
		{[]string{"server auth"}, false, 0, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{[]string{"content commitment", "data encipherment", "encipher only", "decipher only", "crl sign"}, false,
			x509.KeyUsageContentCommitment | x509.KeyUsageDataEncipherment | x509.KeyUsageEncipherOnly | x509.KeyUsageDecipherOnly | x509.KeyUsageCRLSign, nil},
		{[]string{"any", "code signing", "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"}, false, 0,
			[]x509.ExtKeyUsage{x509.ExtKeyUsageAny, x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageIPSECEndSystem, x509.ExtKeyUsageIPSECTunnel,
				x509.ExtKeyUsageIPSECUser, x509.ExtKeyUsageTimeStamping, x509.ExtKeyUsageOCSPSigning, x509.ExtKeyUsageMicrosoftServerGatedCrypto,
				x509.ExtKeyUsageNetscapeServerGatedCrypto}},
	}
	for _, tt := range tests {
		c := &declared.Certificate{Usages: tt.usages, IsCA: tt.isCA}
		ku, eku, err := KeyUsages(c)
		if err != nil || ku != tt.ku || !slices.Equal(eku, tt.eku) {
			t.Errorf("%v isCA %v: %b %v %v, want %b %v", tt.usages, tt.isCA, ku, eku, err, tt.ku, tt.eku)
		}
		// Every usage survives the extension's encoding.
		v, err := marshalKeyUsage(ku)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := parseKeyUsage(v); err != nil || back != ku {
			t.Errorf("key usage %b round-trips to %b (%v)", ku, back, err)
		}
		if len(eku) > 0 {
			v, err := marshalExtKeyUsage(eku)
			if err != nil {
				t.Fatal(err)
			}
			if back, unknown, err := parseExtKeyUsage(v); err != nil || !slices.Equal(back, eku) || len(unknown) != 0 {
				t.Errorf("extended key usage %v round-trips to %v %v (%v)", eku, back, unknown, err)
			}
		}
	}
	// Every name declared knows maps to X.509.
	for _, u := range declared.KnownUsages() {
		if _, _, err := KeyUsages(&declared.Certificate{Usages: []string{u}}); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
}
