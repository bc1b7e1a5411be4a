package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// DefaultDuration is the lifetime of a certificate whose request names
// none: cert-manager's default.
const DefaultDuration = 90 * 24 * time.Hour

// urls are the X.509 extensions an issuer manifest writes into every
// certificate it signs (spec.ca, spec.selfSigned).
type urls struct {
	crl, ocsp, issuing []string
}

// template is the certificate cert-manager would make of a request: the
// CSR's subject and SANs, a random 128-bit serial, notBefore now and
// notAfter after the requested duration, the requested usages (by default
// cert-manager's: digital signature and key encipherment, plus cert sign
// for a CA; no extended key usage), basic constraints, name constraints,
// and a subject key identifier.
func template(req issuer.Request, now time.Time, u urls) (*x509.Certificate, error) {
	csr := req.CSR
	if csr == nil {
		return nil, fmt.Errorf("%w: %s: no certificate request", issuer.ErrPermanent, req.Name)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %s: the certificate request's signature does not verify: %v", issuer.ErrPermanent, req.Name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(csr.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", issuer.ErrPermanent, req.Name, err)
	}
	duration := req.Duration
	if duration <= 0 {
		duration = DefaultDuration
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        csr.Subject,
		RawSubject:     csr.RawSubject,
		PublicKey:      csr.PublicKey,
		DNSNames:       csr.DNSNames,
		IPAddresses:    csr.IPAddresses,
		URIs:           csr.URIs,
		EmailAddresses: csr.EmailAddresses,
		NotBefore:      now,
		NotAfter:       now.Add(duration),
		// The usages the Certificate asks for (pki.KeyUsages: spec.usages
		// or cert-manager's defaults, cert sign for a CA); usages [server
		// auth] legitimately sets no key usage bit.
		KeyUsage:              req.KeyUsage,
		ExtKeyUsage:           req.ExtKeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  req.IsCA,
		SubjectKeyId:          ski,
		CRLDistributionPoints: u.crl,
		OCSPServer:            u.ocsp,
		IssuingCertificateURL: u.issuing,
	}
	// What the CSR requests on top (usages encoded in the request, basic
	// constraints, name constraints, otherNames in the SAN extension), as
	// cert-manager's CertificateTemplateFromCSR copies them.
	if err := pki.ApplyRequested(tmpl, csr); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", issuer.ErrPermanent, req.Name, err)
	}
	return tmpl, nil
}

// sign creates the certificate and parses it back.
func sign(tmpl, parent *x509.Certificate, signer crypto.Signer) (*x509.Certificate, error) {
	tmpl.SignatureAlgorithm = signatureAlgorithm(signer.Public())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, tmpl.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sign the certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("read back the signed certificate: %w", err)
	}
	return cert, nil
}

// randomSerial is a random, non-zero 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate a serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID is RFC 7093's method 1: the leftmost 160 bits of the
// SHA-256 of the subjectPublicKey bit string.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("unsupported public key in the certificate request: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, errors.New("malformed public key in the certificate request")
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// signatureAlgorithm follows cert-manager: the hash grows with the
// signing key (SHA-384 from RSA-3072 and P-384, SHA-512 from RSA-4096 and
// P-521). For other keys Go's default is the same.
func signatureAlgorithm(pub crypto.PublicKey) x509.SignatureAlgorithm {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits >= 4096:
			return x509.SHA512WithRSA
		case bits >= 3072:
			return x509.SHA384WithRSA
		}
		return x509.SHA256WithRSA
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P384():
			return x509.ECDSAWithSHA384
		case elliptic.P521():
			return x509.ECDSAWithSHA512
		}
		return x509.ECDSAWithSHA256
	case ed25519.PublicKey:
		return x509.PureEd25519
	}
	return x509.UnknownSignatureAlgorithm // Go picks
}

// selfSigned reports whether c is signed by its own key under its own name.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// chainUp orders the certificates above signing, as far as they link:
// signing first, then its issuer found in pool, and so on until a
// self-signed root or a certificate whose issuer is not in pool.
// Certificates of pool that are not on the way are left out.
func chainUp(signing *x509.Certificate, pool []*x509.Certificate) []*x509.Certificate {
	up := []*x509.Certificate{signing}
	for cur := signing; !selfSigned(cur); {
		var parent *x509.Certificate
		for _, p := range pool {
			if bytes.Equal(cur.RawIssuer, p.RawSubject) && cur.CheckSignatureFrom(p) == nil && !onChain(up, p) {
				parent = p
				break
			}
		}
		if parent == nil {
			break
		}
		up = append(up, parent)
		cur = parent
	}
	return up
}

func onChain(chain []*x509.Certificate, c *x509.Certificate) bool {
	for _, have := range chain {
		if bytes.Equal(have.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// bundle is what cert-manager writes for a certificate and the chain
// above it: tls.crt is the leaf and every certificate above it except a
// self-signed root (TLS peers must already have it); ca.crt is the top of
// the chain, the root when the chain reaches one. A self-signed
// certificate is its own ca.crt.
func bundle(leaf *x509.Certificate, up []*x509.Certificate) *issuer.Certificate {
	var chain bytes.Buffer
	writePEM(&chain, leaf)
	top := leaf
	for _, c := range up {
		if !selfSigned(c) {
			writePEM(&chain, c)
		}
		top = c
	}
	var ca bytes.Buffer
	writePEM(&ca, top)
	return &issuer.Certificate{ChainPEM: chain.Bytes(), CAPEM: ca.Bytes(), Leaf: leaf}
}

func writePEM(b *bytes.Buffer, c *x509.Certificate) {
	b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// sameKey reports whether a public key is the one of signer.
func sameKey(signer crypto.Signer, pub crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	k, ok := signer.Public().(equaler)
	return ok && k.Equal(pub)
}
