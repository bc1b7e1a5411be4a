package render

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	jks "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// testChain is a leaf under an intermediate under a root, as a ca issuer
// returns it: ChainPEM leaf then intermediate, CAPEM the root.
type testChain struct {
	key               crypto.Signer
	leaf, inter, root *x509.Certificate
	chainPEM, rootPEM []byte
	keyPEM            []byte
	issuedAt          time.Time
	cert              *declared.Certificate
}

func newTestChain(t *testing.T, c *declared.Certificate) *testChain {
	t.Helper()
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	mk := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	gen := func() crypto.Signer {
		k, err := pki.GenerateKey(declared.KeySpec{Algorithm: declared.ECDSA, Size: 256})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rootKey, interKey, key := gen(), gen(), gen()
	ca := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: now, NotAfter: now.Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	rootTmpl := ca(1, "Test Root")
	root := mk(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	inter := mk(ca(2, "Test Intermediate"), root, interKey.Public(), rootKey)
	var ips []net.IP
	for _, s := range c.IPAddresses {
		ips = append(ips, net.ParseIP(s))
	}
	var uris []*url.URL
	for _, s := range c.URIs {
		u, _ := url.Parse(s)
		uris = append(uris, u)
	}
	s := c.Subject
	leaf := mk(&x509.Certificate{SerialNumber: big.NewInt(0xabc), NotBefore: now, NotAfter: now.Add(time.Hour),
		Subject: pkix.Name{CommonName: c.CommonName, Organization: s.Organizations, Country: s.Countries, OrganizationalUnit: s.OrganizationalUnits,
			Locality: s.Localities, Province: s.Provinces, StreetAddress: s.StreetAddresses, PostalCode: s.PostalCodes, SerialNumber: s.SerialNumber},
		DNSNames: c.DNSNames, IPAddresses: ips, URIs: uris, EmailAddresses: c.EmailAddresses}, inter, key.Public(), interKey)
	pemOf := func(cs ...*x509.Certificate) []byte {
		var b bytes.Buffer
		for _, c := range cs {
			b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		}
		return b.Bytes()
	}
	keyPEM, err := pki.MarshalKey(key, c.PrivateKey.Encoding)
	if err != nil {
		t.Fatal(err)
	}
	return &testChain{key: key, leaf: leaf, inter: inter, root: root, chainPEM: pemOf(leaf, inter), rootPEM: pemOf(root),
		keyPEM: keyPEM, issuedAt: now, cert: c}
}

// in is what orderOne hands TLSSecret for this chain.
func (tc *testChain) in(withCA bool, pw Passwords) TLS {
	in := TLS{Certificate: tc.cert, Issued: &issuer.Certificate{ChainPEM: tc.chainPEM, Leaf: tc.leaf},
		KeyPEM: tc.keyPEM, IssuedAt: tc.issuedAt, Reason: "test", Passwords: pw}
	if withCA {
		in.Issued.CAPEM = tc.rootPEM
	}
	return in
}

func outputsCert() *declared.Certificate {
	return &declared.Certificate{Namespace: "shop", Name: "web", SecretName: "web-tls", CommonName: "web.example.com",
		DNSNames: []string{"web.example.com"}, Duration: declared.DefaultDuration,
		PrivateKey: declared.KeySpec{Algorithm: declared.ECDSA, Size: 256, Encoding: "PKCS1"},
		IssuerRef:  declared.IssuerRef{Name: "ca", Kind: declared.KindClusterIssuer, Group: "cert-manager.io"}}
}

// The additional output formats, byte for byte as cert-manager writes them.
func TestAdditionalOutputFormats(t *testing.T) {
	for _, encoding := range []string{"PKCS1", "PKCS8"} {
		t.Run(encoding, func(t *testing.T) {
			c := outputsCert()
			c.PrivateKey.Encoding = encoding
			c.AdditionalOutputFormats = []string{declared.OutputCombinedPEM, declared.OutputDER}
			tc := newTestChain(t, c)
			in := tc.in(false, Passwords{})
			s, err := TLSSecret(in)
			if err != nil {
				t.Fatal(err)
			}
			if want := string(tc.keyPEM) + "\n" + string(tc.chainPEM); string(s.Data[KeyCombinedPEM]) != want {
				t.Errorf("tls-combined.pem is not tls.key, a newline, tls.crt:\n%s", s.Data[KeyCombinedPEM])
			}
			var key any
			if encoding == "PKCS1" {
				key, err = x509.ParseECPrivateKey(s.Data[KeyDER])
			} else {
				key, err = x509.ParsePKCS8PrivateKey(s.Data[KeyDER])
			}
			if err != nil {
				t.Fatalf("key.der: %v", err)
			}
			if !tc.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.(crypto.Signer).Public()) {
				t.Error("key.der is another key")
			}
			if s.Annotations[committed.AnnotationOutputsHash] != c.OutputsHash() || c.OutputsHash() == "" {
				t.Errorf("outputs hash %q", s.Annotations[committed.AnnotationOutputsHash])
			}
			for _, k := range []string{KeyPKCS12, KeyJKS, KeyPKCS12Truststore, KeyJKSTruststore} {
				if _, ok := s.Data[k]; ok {
					t.Errorf("%s written without a keystore", k)
				}
			}
		})
	}
}

func TestPKCS12Keystores(t *testing.T) {
	for _, profile := range []string{"", declared.PKCS12LegacyRC2, declared.PKCS12LegacyDES, declared.PKCS12Modern2023, declared.PKCS12Modern2026} {
		for _, withCA := range []bool{false, true} {
			name := profile
			if withCA {
				name += " with ca.crt"
			}
			t.Run(name, func(t *testing.T) {
				c := outputsCert()
				c.Keystores.PKCS12 = &declared.PKCS12Keystore{Create: true, Profile: profile, Password: declared.KeystorePassword{Literal: "x"}}
				tc := newTestChain(t, c)
				in := tc.in(withCA, Passwords{PKCS12: []byte("p12-pass")})
				s, err := TLSSecret(in)
				if err != nil {
					t.Fatal(err)
				}
				key, leaf, cas, err := pkcs12.DecodeChain(s.Data[KeyPKCS12], "p12-pass")
				if err != nil {
					t.Fatalf("DecodeChain: %v", err)
				}
				if !leaf.Equal(tc.leaf) || !tc.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.(crypto.Signer).Public()) {
					t.Error("keystore.p12 holds another leaf or key")
				}
				// The rest of the chain, then ca.crt.
				want := []*x509.Certificate{tc.inter}
				if withCA {
					want = append(want, tc.root)
				}
				if len(cas) != len(want) || !cas[0].Equal(want[0]) || (withCA && !cas[1].Equal(tc.root)) {
					t.Errorf("CA certificates %d, want %d", len(cas), len(want))
				}
				if _, _, _, err := pkcs12.DecodeChain(s.Data[KeyPKCS12], "wrong"); err == nil {
					t.Error("keystore.p12 opens with a wrong password")
				}
				trust, ok := s.Data[KeyPKCS12Truststore]
				if ok != withCA {
					t.Fatalf("truststore.p12 present %v, want %v (only when ca.crt is known)", ok, withCA)
				}
				if withCA {
					certs, err := pkcs12.DecodeTrustStore(trust, "p12-pass")
					if err != nil || len(certs) != 1 || !certs[0].Equal(tc.root) {
						t.Errorf("truststore.p12: %d certificates, %v", len(certs), err)
					}
				}
			})
		}
	}
}

func TestJKSKeystores(t *testing.T) {
	for _, withCA := range []bool{false, true} {
		t.Run(map[bool]string{false: "no ca.crt", true: "with ca.crt"}[withCA], func(t *testing.T) {
			c := outputsCert()
			c.Keystores.JKS = &declared.JKSKeystore{Create: true, Alias: "Web-Key", Password: declared.KeystorePassword{Literal: "x"}}
			tc := newTestChain(t, c)
			in := tc.in(withCA, Passwords{JKS: []byte("jks-pass")})
			s, err := TLSSecret(in)
			if err != nil {
				t.Fatal(err)
			}
			ks := jks.New()
			if err := ks.Load(bytes.NewReader(s.Data[KeyJKS]), []byte("jks-pass")); err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := jks.New().Load(bytes.NewReader(s.Data[KeyJKS]), []byte("wrong")); err == nil {
				t.Error("keystore.jks loads with a wrong password")
			}
			// keystore-go lowers aliases, as under cert-manager.
			entry, err := ks.GetPrivateKeyEntry("web-key", []byte("jks-pass"))
			if err != nil {
				t.Fatalf("private key entry: %v (aliases %v)", err, ks.Aliases())
			}
			key, err := x509.ParsePKCS8PrivateKey(entry.PrivateKey)
			if err != nil || !tc.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.(crypto.Signer).Public()) {
				t.Errorf("the entry's key: %v", err)
			}
			if len(entry.CertificateChain) != 2 || !bytes.Equal(entry.CertificateChain[0].Content, tc.leaf.Raw) ||
				!bytes.Equal(entry.CertificateChain[1].Content, tc.inter.Raw) || !entry.CreationTime.Equal(tc.issuedAt) {
				t.Errorf("chain of %d, created %s", len(entry.CertificateChain), entry.CreationTime)
			}
			trusted, err := ks.GetTrustedCertificateEntry("ca")
			if withCA != (err == nil) {
				t.Errorf("trusted entry ca: %v", err)
			}
			if withCA && !bytes.Equal(trusted.Certificate.Content, tc.root.Raw) {
				t.Error("the trusted entry is not ca.crt")
			}
			trust, ok := s.Data[KeyJKSTruststore]
			if ok != withCA {
				t.Fatalf("truststore.jks present %v, want %v", ok, withCA)
			}
			if withCA {
				ts := jks.New()
				if err := ts.Load(bytes.NewReader(trust), []byte("jks-pass")); err != nil {
					t.Fatal(err)
				}
				if e, err := ts.GetTrustedCertificateEntry("ca"); err != nil || !bytes.Equal(e.Certificate.Content, tc.root.Raw) || len(ts.Aliases()) != 1 {
					t.Errorf("truststore.jks: %v, aliases %v", err, ts.Aliases())
				}
			}
		})
	}
}

// A keystore that is not created writes nothing; one without its
// password is an error that says which, never a key.
func TestKeystoreEdges(t *testing.T) {
	c := outputsCert()
	c.Keystores.PKCS12 = &declared.PKCS12Keystore{Create: false, Password: declared.KeystorePassword{Literal: "x"}}
	tc := newTestChain(t, c)
	in := tc.in(true, Passwords{})
	s, err := TLSSecret(in)
	if err != nil || len(s.Data) != 3 {
		t.Fatalf("data %d keys, %v", len(s.Data), err)
	}
	c.Keystores.PKCS12.Create = true
	_, err = TLSSecret(in)
	if err == nil || !strings.Contains(err.Error(), "PKCS#12 keystore: no password") || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("err = %v", err)
	}
}

// cert-manager's certificate annotations: the SANs of every kind and the
// subject, written from the certificate; Verify reads them back.
func TestSecretAnnotationsAndVerify(t *testing.T) {
	c := outputsCert()
	c.IPAddresses = []string{"10.0.0.1", "2001:db8::1"}
	c.URIs = []string{"spiffe://example.com/web"}
	c.EmailAddresses = []string{"ops@example.com"}
	c.Subject = declared.Subject{Organizations: []string{"Example, Inc.", "Labs"}, Countries: []string{"NL"}, SerialNumber: "42"}
	c.AdditionalOutputFormats = []string{declared.OutputDER, declared.OutputCombinedPEM}
	tc := newTestChain(t, c)
	in := tc.in(true, Passwords{})
	s, err := TLSSecret(in)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"cert-manager.io/ip-sans":    "10.0.0.1,2001:db8::1",
		"cert-manager.io/uri-sans":   "spiffe://example.com/web",
		"cert-manager.io/email-sans": "ops@example.com",
		"cert-manager.io/alt-names":  "web.example.com",
		// CSV, in the certificate's order: two O values are one DER SET.
		"cert-manager.io/subject-organizations": `Labs,"Example, Inc."`,
		"cert-manager.io/subject-countries":     "NL",
		"cert-manager.io/subject-serialnumber":  "42",
	} {
		if got, ok := s.Annotations[k]; !ok || got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"cert-manager.io/subject-provinces", "cert-manager.io/subject-localities"} {
		if _, ok := s.Annotations[k]; ok {
			t.Errorf("%s written for an attribute the certificate does not have", k)
		}
	}
	out, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := committed.Read(committed.SecretPath("default", "shop", "web-tls"), append(out, "sops:\n    age:\n        - recipient: age1x\n"...))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.IPAddresses) != 2 || len(rec.URIs) != 1 || len(rec.EmailAddresses) != 1 || rec.OutputsHash != c.OutputsHash() {
		t.Fatalf("record %+v", rec)
	}
	if err := Verify(s, rec); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// What Verify catches: SANs the certificate lacks, outputs that do not
	// match tls.key and tls.crt.
	for name, mod := range map[string]func(*committed.Certificate, map[string][]byte){
		"ip-sans":          func(r *committed.Certificate, _ map[string][]byte) { r.IPAddresses = []string{"10.0.0.9"} },
		"uri-sans":         func(r *committed.Certificate, _ map[string][]byte) { r.URIs = nil },
		"outputs hash":     func(r *committed.Certificate, _ map[string][]byte) { r.OutputsHash = "0000" },
		"tls-combined.pem": func(_ *committed.Certificate, d map[string][]byte) { d[KeyCombinedPEM] = d[KeyCombinedPEM][1:] },
		"key.der":          func(_ *committed.Certificate, d map[string][]byte) { d[KeyDER] = []byte("SECRETDER") },
	} {
		r := rec
		sc := s.DeepCopy()
		mod(&r, sc.Data)
		err := Verify(sc, r)
		if !errors.Is(err, ErrMismatch) || strings.Contains(err.Error(), "SECRETDER") || strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
