package ca

import (
	"context"
	"fmt"
	"time"

	"github.com/certsync/certsync/issuer"
)

// SelfSignedConfig is one `selfSigned` issuer.
type SelfSignedConfig struct {
	// Issuer names the issuer in errors ("ClusterIssuer/selfsigned").
	Issuer string
	// CRLDistributionPoints are written into every certificate
	// (spec.selfSigned). Default: none.
	CRLDistributionPoints []string
	// Clock is the time source. Default: time.Now.
	Clock func() time.Time
}

// SelfSigned signs each certificate with its own private key, which the
// request carries (issuer.Request.Signer).
type SelfSigned struct{ cfg SelfSignedConfig }

var _ issuer.Issuer = (*SelfSigned)(nil)

// NewSelfSigned returns a selfSigned issuer.
func NewSelfSigned(cfg SelfSignedConfig) *SelfSigned {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &SelfSigned{cfg: cfg}
}

// Issue signs req with req.Signer, which must be the key of req.CSR, as
// cert-manager checks the key it reads against the request. The
// certificate is its own issuer and its own ca.crt.
func (s *SelfSigned) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	if req.Signer == nil {
		return nil, fmt.Errorf("%w: %s: %s: a self-signed certificate is signed with its own private key, and the request carries none", issuer.ErrPermanent, s.cfg.Issuer, req.Name)
	}
	tmpl, err := template(req, s.cfg.Clock(), urls{crl: s.cfg.CRLDistributionPoints})
	if err != nil {
		return nil, err
	}
	if !sameKey(req.Signer, tmpl.PublicKey) {
		return nil, fmt.Errorf("%w: %s: %s: the certificate request was not made with the key it should be signed with", issuer.ErrPermanent, s.cfg.Issuer, req.Name)
	}
	cert, err := sign(tmpl, tmpl, req.Signer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.cfg.Issuer, err)
	}
	return bundle(cert, nil), nil
}
