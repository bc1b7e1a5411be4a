package declared

import (
	"fmt"
	"slices"
	"strings"
)

// acmeServedUsages are the usages of the TLS server certificate an ACME
// CA issues whatever the request says: cert-manager's defaults (digital
// signature, key encipherment), "signing" (its other name for digital
// signature) and server auth.
var acmeServedUsages = []string{UsageDigitalSignature, UsageSigning, UsageKeyEncipherment, UsageServerAuth}

// acmeCanIssue refuses what an ACME CA would not put in the certificate.
// An ACME CA validates DNS names and IP addresses (RFC 8738) and writes
// everything else itself: the subject holds at most the commonName, the
// usages are those of a TLS server certificate. cert-manager sends the
// rest in the request and Let's Encrypt drops it without a word; certsync
// refuses it here, as it refuses anything it would not issue as asked,
// so the difference shows in review rather than in the certificate.
func acmeCanIssue(c *Certificate, iss *Issuer) error {
	other := "use a ca or selfSigned issuer for it"
	switch {
	case len(c.URIs) > 0:
		return fmt.Errorf("spec.uris: %s is an ACME issuer, and an ACME CA validates DNS names and IP addresses only: it cannot issue URI SANs; %s", iss.Key(), other)
	case len(c.EmailAddresses) > 0:
		return fmt.Errorf("spec.emailAddresses: %s is an ACME issuer, and an ACME CA validates DNS names and IP addresses only: it cannot issue email SANs; %s", iss.Key(), other)
	case len(c.OtherNames) > 0:
		return fmt.Errorf("spec.otherNames: %s is an ACME issuer, and an ACME CA validates DNS names and IP addresses only: it cannot issue otherName SANs; %s", iss.Key(), other)
	case c.LiteralSubject != "":
		return fmt.Errorf("spec.literalSubject: %s is an ACME issuer: the CA writes the subject itself, with at most the commonName, and would drop the rest; write commonName instead, or %s", iss.Key(), other)
	case !c.Subject.IsZero():
		return fmt.Errorf("spec.subject: %s is an ACME issuer: the CA would drop %s (an ACME CA issues domain-validated certificates whose subject holds at most the commonName; cert-manager sends them and Let's Encrypt ignores them); remove spec.subject, or %s",
			iss.Key(), strings.Join(c.Subject.fields(), ", "), other)
	case c.NameConstraints != nil:
		return fmt.Errorf("spec.nameConstraints: %s is an ACME issuer, and ACME CAs do not issue CA certificates; %s", iss.Key(), other)
	}
	for _, u := range c.Usages {
		if !slices.Contains(acmeServedUsages, u) {
			return fmt.Errorf("spec.usages: %q: %s is an ACME issuer, and the CA issues TLS server certificates with its own usages (digital signature, key encipherment, server auth): it would not honour this one; remove it, or %s", u, iss.Key(), other)
		}
	}
	return nil
}
