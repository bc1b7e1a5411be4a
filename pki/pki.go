// Package pki generates private keys and certificate requests the way
// cert-manager does, and reads back what an issuer returned.
//
// Keys are created here and nowhere else; they leave this package only as
// PEM bytes destined for an encrypted file, never in an error or a log line.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/certsync/certsync/declared"
)

// GenerateKey creates a private key for spec (RSA 2048-8192, ECDSA
// P-256/384/521, Ed25519).
func GenerateKey(spec declared.KeySpec) (crypto.Signer, error) {
	switch spec.Algorithm {
	case declared.RSA:
		return rsa.GenerateKey(rand.Reader, spec.Size)
	case declared.ECDSA:
		var c elliptic.Curve
		switch spec.Size {
		case 256:
			c = elliptic.P256()
		case 384:
			c = elliptic.P384()
		case 521:
			c = elliptic.P521()
		default:
			return nil, fmt.Errorf("generate key: unsupported ECDSA size %d", spec.Size)
		}
		return ecdsa.GenerateKey(c, rand.Reader)
	case declared.Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("generate key: unsupported algorithm %q", spec.Algorithm)
}

// MarshalKey encodes a key as cert-manager writes tls.key: PKCS#1 ("RSA
// PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY") by default, PKCS#8 when asked
// and always for Ed25519.
func MarshalKey(key crypto.Signer, encoding string) ([]byte, error) {
	if encoding != "PKCS8" {
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				return nil, errors.New("encode EC private key failed")
			}
			return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, errors.New("encode PKCS#8 private key failed")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads a PEM private key in any of the encodings MarshalKey
// writes. Its errors never quote the input.
func ParseKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return nil, errors.New("no PEM private key found")
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: malformed key", block.Type)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("private key cannot sign")
	}
	return s, nil
}

// KeySpecOf describes a public key in the form of declared.KeySpec.String,
// so a committed key can be compared with the declared spec.
func KeySpecOf(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("%s-%d", declared.RSA, k.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("%s-%d", declared.ECDSA, k.Curve.Params().BitSize)
	case ed25519.PublicKey:
		return declared.Ed25519
	}
	return "unknown"
}

// ParseChain reads every CERTIFICATE block of a PEM bundle, leaf first.
func ParseChain(pemBytes []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d of the chain: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate in PEM data")
	}
	return out, nil
}

// KeyMatches reports whether the certificate is for this key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	return ok && pub.Equal(cert.PublicKey)
}

// Serial formats a certificate serial number as cert-manager and openssl
// show it: lower-case hex.
func Serial(cert *x509.Certificate) string { return hex.EncodeToString(cert.SerialNumber.Bytes()) }

// Fingerprint is the SHA-256 of the certificate, hex.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}
