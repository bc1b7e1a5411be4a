package render

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// FromSecret reads back what an earlier render of a TLS Secret was made
// from: the certificate chain (tls.crt), the CA (ca.crt), the key
// (tls.key, its bytes as they are) and the issuance record its
// annotations carry (issued-at, reason, the CA's renewal window). Certificate
// and Passwords are left for the caller: TLSSecret then renders the same
// certificate and key for the declaration as it stands, with the labels,
// annotations, output formats and keystores it asks for now, and orders
// nothing. Errors never quote key material.
func FromSecret(s *corev1.Secret) (TLS, error) {
	what := "re-render Secret " + s.Namespace + "/" + s.Name
	chainPEM, keyPEM := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	chain, err := pki.ParseChain(chainPEM)
	if err != nil {
		return TLS{}, fmt.Errorf("%s: tls.crt: %w", what, err)
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		return TLS{}, fmt.Errorf("%s: tls.key: %w", what, err) // ParseKey never quotes its input
	}
	if !pki.KeyMatches(chain[0], key) {
		return TLS{}, fmt.Errorf("%s: tls.key does not belong to the certificate in tls.crt", what)
	}
	rec := committed.FromAnnotations(s.Annotations)
	in := TLS{
		Issued:   &issuer.Certificate{ChainPEM: chainPEM, CAPEM: s.Data["ca.crt"], Leaf: chain[0]},
		KeyPEM:   keyPEM,
		IssuedAt: rec.IssuedAt,
		Reason:   rec.Reason,
	}
	if !rec.RenewalWindowStart.IsZero() {
		in.Window = &issuer.RenewalWindow{Start: rec.RenewalWindowStart, End: rec.RenewalWindowEnd}
	}
	return in, nil
}
