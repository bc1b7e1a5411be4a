package render

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	jks "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/pki"
)

// Keys of the Secret beyond tls.crt, tls.key and ca.crt, as cert-manager
// names them.
const (
	// KeyCombinedPEM is additionalOutputFormats CombinedPEM: tls.key, a
	// newline, tls.crt.
	KeyCombinedPEM = "tls-combined.pem"
	// KeyDER is additionalOutputFormats DER: the DER of tls.key's PEM
	// block (PKCS#1, SEC 1 or PKCS#8, as spec.privateKey.encoding says).
	KeyDER = "key.der"
	// KeyPKCS12 and KeyPKCS12Truststore are keystores.pkcs12: the key and
	// chain, and (when ca.crt is known) the CA alone.
	KeyPKCS12           = "keystore.p12"
	KeyPKCS12Truststore = "truststore.p12"
	// KeyJKS and KeyJKSTruststore are keystores.jks, likewise.
	KeyJKS           = "keystore.jks"
	KeyJKSTruststore = "truststore.jks"
)

// Passwords are the keystore passwords of one Certificate, resolved by
// the caller from spec.keystores (a literal, or a Secret key); nil for a
// keystore that is not created. They are never logged or quoted.
type Passwords struct {
	PKCS12 []byte
	JKS    []byte
}

// Keystore names in Outputs: spec.keystores' own field names.
const (
	OutputPKCS12 = "pkcs12"
	OutputJKS    = "jks"
)

// Outputs names what a Secret of c holds beyond tls.crt, tls.key and
// ca.crt, sorted: its additional output formats (CombinedPEM, DER) and the
// keystores it creates (jks, pkcs12). The committed Secret records the
// list, so a plan can say which were added or removed.
func Outputs(c *declared.Certificate) []string {
	out := slices.Clone(c.AdditionalOutputFormats)
	if k := c.Keystores.PKCS12; k != nil && k.Create {
		out = append(out, OutputPKCS12)
	}
	if k := c.Keystores.JKS; k != nil && k.Create {
		out = append(out, OutputJKS)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// outputs adds to data (which holds tls.crt, tls.key and ca.crt) what
// the Certificate's additional output formats and keystores ask for, as
// cert-manager's issuing controller writes them
// (pkg/controller/certificates/issuing/internal: secret.go, keystore.go):
//
//   - a PKCS#12 keystore holds the key, the leaf, and as CA certificates
//     the rest of the chain then ca.crt, encoded with the profile's
//     encoder (LegacyRC2 by default); a JKS keystore holds the key (PKCS#8)
//     with the whole chain under the alias, and ca.crt's certificates as
//     trusted entries "ca", "ca-1", ...;
//   - a truststore (the CA certificates alone) only when ca.crt is known:
//     never for a public ACME CA.
//
// JKS entries carry issuedAt as their creation time, so rendering reads
// no clock. Errors never quote a key or a password.
func outputs(c *declared.Certificate, data map[string][]byte, pw Passwords, issuedAt time.Time) error {
	keyPEM, chainPEM, caPEM := data["tls.key"], data["tls.crt"], data["ca.crt"]
	for _, f := range c.AdditionalOutputFormats {
		switch f {
		case declared.OutputCombinedPEM:
			data[KeyCombinedPEM] = bytes.Join([][]byte{keyPEM, chainPEM}, []byte("\n"))
		case declared.OutputDER:
			block, _ := pem.Decode(keyPEM)
			if block == nil {
				return errors.New("additional output format DER: tls.key holds no PEM block")
			}
			data[KeyDER] = block.Bytes
		default:
			return fmt.Errorf("unknown additional output format %q", f)
		}
	}
	p12, jksStore := c.Keystores.PKCS12, c.Keystores.JKS
	if (p12 == nil || !p12.Create) && (jksStore == nil || !jksStore.Create) {
		return nil
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("keystores: tls.key: %w", err)
	}
	chain, err := pki.ParseChain(chainPEM)
	if err != nil {
		return fmt.Errorf("keystores: tls.crt: %w", err)
	}
	var cas []*x509.Certificate
	if len(caPEM) > 0 {
		if cas, err = pki.ParseChain(caPEM); err != nil {
			return fmt.Errorf("keystores: ca.crt: %w", err)
		}
	}
	if p12 != nil && p12.Create {
		if len(pw.PKCS12) == 0 {
			return errors.New("PKCS#12 keystore: no password")
		}
		enc := pkcs12Encoder(p12.Profile)
		store, err := enc.Encode(key, chain[0], append(chain[1:len(chain):len(chain)], cas...), string(pw.PKCS12))
		if err != nil {
			return fmt.Errorf("encode the PKCS#12 keystore: %w", err)
		}
		data[KeyPKCS12] = store
		if len(cas) > 0 {
			trust, err := enc.EncodeTrustStore(cas, string(pw.PKCS12))
			if err != nil {
				return fmt.Errorf("encode the PKCS#12 truststore: %w", err)
			}
			data[KeyPKCS12Truststore] = trust
		}
	}
	if jksStore != nil && jksStore.Create {
		if len(pw.JKS) == 0 {
			return errors.New("JKS keystore: no password")
		}
		store, trust, err := encodeJKS(jksStore.Alias, key, chain, cas, pw.JKS, issuedAt)
		if err != nil {
			return err
		}
		data[KeyJKS] = store
		if trust != nil {
			data[KeyJKSTruststore] = trust
		}
	}
	return nil
}

// pkcs12Encoder is go-pkcs12's encoder of a profile; cert-manager's
// default, LegacyRC2, for an empty one.
func pkcs12Encoder(profile string) *pkcs12.Encoder {
	switch profile {
	case declared.PKCS12Modern2026:
		return pkcs12.Modern2026
	case declared.PKCS12Modern2023:
		return pkcs12.Modern2023
	case declared.PKCS12LegacyDES:
		return pkcs12.LegacyDES
	default:
		return pkcs12.LegacyRC2
	}
}

// encodeJKS writes the JKS keystore and, when there are CA certificates,
// the JKS truststore (nil otherwise).
func encodeJKS(alias string, key any, chain, cas []*x509.Certificate, password []byte, at time.Time) (store, trust []byte, err error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, errors.New("JKS keystore: the private key cannot be encoded as PKCS#8")
	}
	certs := make([]jks.Certificate, len(chain))
	for i, c := range chain {
		certs[i] = jks.Certificate{Type: "X509", Content: c.Raw}
	}
	ks := jks.New(jks.WithOrderedAliases())
	if err := ks.SetPrivateKeyEntry(alias, jks.PrivateKeyEntry{CreationTime: at, PrivateKey: keyDER, CertificateChain: certs}, password); err != nil {
		return nil, nil, fmt.Errorf("JKS keystore: %w", err)
	}
	if err := addTrusted(ks, cas, at); err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := ks.Store(&buf, password); err != nil {
		return nil, nil, fmt.Errorf("encode the JKS keystore: %w", err)
	}
	if len(cas) == 0 {
		return buf.Bytes(), nil, nil
	}
	ts := jks.New(jks.WithOrderedAliases())
	if err := addTrusted(ts, cas, at); err != nil {
		return nil, nil, err
	}
	var tbuf bytes.Buffer
	if err := ts.Store(&tbuf, password); err != nil {
		return nil, nil, fmt.Errorf("encode the JKS truststore: %w", err)
	}
	return buf.Bytes(), tbuf.Bytes(), nil
}

// addTrusted adds CA certificates as cert-manager names them: "ca",
// then "ca-1", "ca-2", ...
func addTrusted(ks jks.KeyStore, cas []*x509.Certificate, at time.Time) error {
	for i, ca := range cas {
		alias := "ca"
		if i > 0 {
			alias = fmt.Sprintf("ca-%d", i)
		}
		if err := ks.SetTrustedCertificateEntry(alias, jks.TrustedCertificateEntry{CreationTime: at,
			Certificate: jks.Certificate{Type: "X509", Content: ca.Raw}}); err != nil {
			return fmt.Errorf("JKS trusted certificate %s: %w", alias, err)
		}
	}
	return nil
}
