// Package ca implements cert-manager's two in-process issuers: `ca`, which
// signs with a CA key pair kept in a Secret, and `selfSigned`, which signs
// each certificate with its own private key.
//
// # What is signed
//
// As cert-manager's issuers sign a CertificateRequest: the subject and
// the SANs of the CSR, a random 128-bit serial, notBefore now, notAfter
// after the requested duration (default 90 days), key usages digital
// signature and key encipherment (plus cert sign when the Certificate asks
// for isCA), basic constraints, subject and authority key identifiers, and
// the issuer's CRL distribution points, OCSP servers and issuing
// certificate URLs.
//
// One deliberate difference: a `ca` issuer never signs past its own
// notAfter (or that of any certificate above it). cert-manager does, and
// documents that its leaves may outlive their CA (cert-manager#5864).
//
// # What is written
//
// tls.crt is the certificate followed by the chain above it without a
// self-signed root; ca.crt is the top of that chain (the root). A
// self-signed certificate is its own ca.crt. That is what cert-manager
// writes for these issuers.
//
// # The bootstrap
//
// cert-manager's documented private CA: a selfSigned ClusterIssuer issues
// an isCA Certificate into Secret cert-manager/root-ca, and a ca
// ClusterIssuer with secretName root-ca signs the rest. With certsync the
// root's Secret is one it committed itself; the reconciler hands it to
// this package through issuer.SecretGetter.
package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// Keys of a kubernetes.io/tls Secret, as cert-manager reads a CA's.
const (
	keyCert = "tls.crt"
	keyKey  = "tls.key"
	keyCA   = "ca.crt"
)

// Config is one `ca` issuer.
type Config struct {
	// Issuer names the issuer in errors ("ClusterIssuer/root-ca").
	Issuer string
	// Namespace and SecretName locate the CA's Secret (spec.ca.secretName
	// in the issuer's namespace, cert-manager's for a ClusterIssuer). Its
	// tls.crt holds the CA certificate first, then any certificates above
	// it; tls.key its private key; ca.crt, optional, the root.
	Namespace, SecretName string
	// Secrets reads the Secret. Required.
	Secrets issuer.SecretGetter
	// CRLDistributionPoints, OCSPServers and IssuingCertificateURLs are
	// written into every certificate (spec.ca). Default: none.
	CRLDistributionPoints, OCSPServers, IssuingCertificateURLs []string
	// Clock is the time source. Default: time.Now.
	Clock func() time.Time
}

// Issuer signs with a CA key pair.
type Issuer struct {
	cfg Config
	// up is the CA certificate and the chain above it, as far as tls.crt
	// and ca.crt link; key is the CA certificate's private key.
	up  []*x509.Certificate
	key crypto.Signer
}

var _ issuer.Issuer = (*Issuer)(nil)

// New reads and checks the CA key pair. A Secret that is missing, holds
// no key pair, a key that is not the certificate's, or a certificate that
// is not a CA is an error wrapping issuer.ErrPermanent: it recurs until
// the repository changes.
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	if cfg.Secrets == nil {
		return nil, errors.New("ca issuer: no Secret reader")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	where := fmt.Sprintf("%s: CA Secret %s/%s", cfg.Issuer, cfg.Namespace, cfg.SecretName)
	crtPEM, err := cfg.Secrets.SecretKey(ctx, cfg.Namespace, cfg.SecretName, keyCert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Issuer, err)
	}
	keyPEM, err := cfg.Secrets.SecretKey(ctx, cfg.Namespace, cfg.SecretName, keyKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Issuer, err)
	}
	// ca.crt is optional; the Secret was found, so a permanent error here
	// says it has no such key.
	caPEM, err := cfg.Secrets.SecretKey(ctx, cfg.Namespace, cfg.SecretName, keyCA)
	if err != nil && !errors.Is(err, issuer.ErrPermanent) {
		return nil, fmt.Errorf("%s: %w", cfg.Issuer, err)
	}
	certs, err := pki.ParseChain(crtPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: tls.crt: %v", issuer.ErrPermanent, where, err)
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: tls.key: %v", issuer.ErrPermanent, where, err)
	}
	pool := certs[1:]
	if len(caPEM) > 0 {
		roots, err := pki.ParseChain(caPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: ca.crt: %v", issuer.ErrPermanent, where, err)
		}
		pool = append(pool, roots...)
	}
	signing := certs[0]
	switch {
	case !sameKey(key, signing.PublicKey):
		return nil, fmt.Errorf("%w: %s: tls.key is not the key of the first certificate in tls.crt", issuer.ErrPermanent, where)
	case !signing.BasicConstraintsValid || !signing.IsCA:
		return nil, fmt.Errorf("%w: %s: the certificate in tls.crt (serial %s) is not a CA: issue it with isCA: true", issuer.ErrPermanent, where, pki.Serial(signing))
	case signing.KeyUsage != 0 && signing.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("%w: %s: the certificate in tls.crt (serial %s) may not sign certificates (no cert sign key usage)", issuer.ErrPermanent, where, pki.Serial(signing))
	}
	return &Issuer{cfg: cfg, up: chainUp(signing, pool), key: key}, nil
}

// Issue signs req with the CA. The certificate ends no later than any
// certificate of the chain above it; a chain that has already expired is
// an error wrapping issuer.ErrPermanent (renewing the CA releases it).
func (i *Issuer) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	now := i.cfg.Clock()
	for _, c := range i.up {
		if !now.Before(c.NotAfter) {
			return nil, fmt.Errorf("%w: %s: CA certificate %q (serial %s) in Secret %s/%s expired at %s: renew it first",
				issuer.ErrPermanent, i.cfg.Issuer, c.Subject.CommonName, pki.Serial(c), i.cfg.Namespace, i.cfg.SecretName, c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	tmpl, err := template(req, now, urls{crl: i.cfg.CRLDistributionPoints, ocsp: i.cfg.OCSPServers, issuing: i.cfg.IssuingCertificateURLs})
	if err != nil {
		return nil, err
	}
	for _, c := range i.up {
		if c.NotAfter.Before(tmpl.NotAfter) {
			tmpl.NotAfter = c.NotAfter
		}
	}
	leaf, err := sign(tmpl, i.up[0], i.key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", i.cfg.Issuer, err)
	}
	return bundle(leaf, i.up), nil
}
