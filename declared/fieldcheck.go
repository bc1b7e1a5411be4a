package declared

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/certsync/certsync/internal/rfc4514"
)

// The rules of the fields in fields.go, with cert-manager's webhook
// messages (internal/apis/certmanager/validation/certificate.go) where
// it has one. Where cert-manager would accept a value and only fail when
// it builds the request (a non-ASCII URI, an unreadable password
// reference), the value is refused here, before anything is ordered.

// parseSubject reads spec.subject and spec.literalSubject.
func parseSubject(d *document, c *Certificate, raw *rawSubject, literal string) error {
	if raw != nil {
		c.Subject = Subject{
			Organizations: raw.Organizations, Countries: raw.Countries,
			OrganizationalUnits: raw.OrganizationalUnits, Localities: raw.Localities,
			Provinces: raw.Provinces, StreetAddresses: raw.StreetAddresses,
			PostalCodes: raw.PostalCodes, SerialNumber: raw.SerialNumber,
		}
	}
	if literal == "" {
		return nil
	}
	c.LiteralSubject = literal
	if c.CommonName != "" {
		return d.failField("spec.commonName", "When providing a `LiteralSubject` no `commonName` may be provided.")
	}
	if !c.Subject.IsZero() {
		return d.failField("spec.subject", "When providing a `LiteralSubject` no `Subject` properties may be provided.")
	}
	seq, err := rfc4514.Parse(literal)
	if err != nil {
		return d.fail("spec.literalSubject", "%q: %v", clip(literal), err)
	}
	if v, unknown := rfc4514.Unknown(seq); unknown {
		return d.fail("spec.literalSubject", "Literal subject contains unrecognized key with value [%s] (attribute types are C, CN, DC, L, O, OU, SERIALNUMBER, ST, STREET and UID, upper case as cert-manager reads them, or dotted OIDs)", clip(v))
	}
	if cn := rfc4514.CommonName(seq); len(cn) > maxCommonName {
		return d.fail("spec.literalSubject", "its CN is %d bytes long; a commonName may be at most %d", len(cn), maxCommonName)
	}
	return nil
}

// literalCommonName is the CN of a validated literal subject.
func literalCommonName(literal string) string {
	seq, err := rfc4514.Parse(literal)
	if err != nil {
		return ""
	}
	return rfc4514.CommonName(seq)
}

// parseSANs reads the SANs other than DNS names. Each list is bounded by
// MaxNames before any entry is looked at.
func parseSANs(d *document, c *Certificate, ips, uris, emails []string, others []rawOtherName) error {
	for _, l := range []struct {
		field string
		n     int
	}{{"ipAddresses", len(ips)}, {"uris", len(uris)}, {"emailAddresses", len(emails)}, {"otherNames", len(others)}} {
		if l.n > MaxNames {
			return d.failKey("spec", l.field, "has %d entries; a certificate may have at most %d: split it into several Certificates", l.n, MaxNames)
		}
	}
	for i, ip := range ips {
		if net.ParseIP(ip) == nil {
			return d.fail(fmt.Sprintf("spec.ipAddresses[%d]", i), "%q: invalid IP address", clip(ip))
		}
	}
	c.IPAddresses = nonEmpty(ips)
	for i, u := range uris {
		if err := validURI(u); err != nil {
			return d.fail(fmt.Sprintf("spec.uris[%d]", i), "%q: %v", clip(u), err)
		}
	}
	c.URIs = nonEmpty(uris)
	for i, e := range emails {
		field := fmt.Sprintf("spec.emailAddresses[%d]", i)
		a, err := mail.ParseAddress(e)
		switch {
		case err != nil:
			return d.fail(field, "%q: invalid email address: %v", clip(e), err)
		case a.Address != e:
			return d.fail(field, "%q: invalid email address: make sure the supplied value only contains the email address itself", clip(e))
		case !isASCII(e):
			return d.fail(field, "%q cannot be encoded as an IA5String: a certificate's email addresses are ASCII", clip(e))
		}
	}
	c.EmailAddresses = nonEmpty(emails)
	for i, o := range others {
		field := fmt.Sprintf("spec.otherNames[%d]", i)
		if o.OID == "" {
			return d.fail(field+".oid", "must be specified")
		}
		if _, err := rfc4514.ParseOID(o.OID); err != nil {
			return d.fail(field+".oid", "%q: invalid oid syntax", clip(o.OID))
		}
		if o.UTF8Value == "" || !utf8.ValidString(o.UTF8Value) {
			return d.fail(field+".utf8Value", "must be set to a valid non-empty UTF8 string")
		}
		c.OtherNames = append(c.OtherNames, OtherName{OID: o.OID, UTF8Value: o.UTF8Value})
	}
	return nil
}

// validURI accepts what a certificate's URI SAN can hold and Go's x509
// parser reads back: an absolute, ASCII URI whose host, if any, has no
// empty label.
func validURI(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("invalid URI: %v", err)
	case u.Scheme == "":
		return fmt.Errorf("invalid URI: a URI SAN must be absolute (scheme:..., such as spiffe://example.com/web)")
	case !isASCII(s):
		return fmt.Errorf("cannot be encoded as an IA5String: a URI SAN is ASCII (percent-encode the rest)")
	}
	if host := u.Hostname(); host != "" && net.ParseIP(host) == nil {
		if strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || strings.Contains(host, "..") {
			return fmt.Errorf("invalid URI: the host %q has an empty label", clip(host))
		}
	}
	return nil
}

// nonEmpty is nil for an empty list, so a Certificate without the field
// equals one written without it.
func nonEmpty(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// parseUsages reads spec.usages and spec.encodeUsagesInRequest.
func parseUsages(d *document, c *Certificate, usages []string, encode *bool) error {
	for i, u := range usages {
		if !knownUsage(u) {
			return d.fail(fmt.Sprintf("spec.usages[%d]", i), "%q: unknown keyusage (cert-manager's: %s)", clip(u), strings.Join(KnownUsages(), ", "))
		}
	}
	c.Usages = nonEmpty(usages)
	c.UsagesNotInRequest = encode != nil && !*encode
	return nil
}

// parseNameConstraints reads spec.nameConstraints. Like cert-manager it
// needs isCA, so call it after c.IsCA is set.
func parseNameConstraints(d *document, c *Certificate, raw *rawNameConstraints) error {
	if raw == nil {
		return nil
	}
	const field = "spec.nameConstraints"
	if !c.IsCA {
		return d.fail(field, "isCA should be true when nameConstraints is set")
	}
	if raw.Permitted == nil && raw.Excluded == nil {
		return d.fail(field, "either permitted or excluded must be set")
	}
	nc := &NameConstraints{Critical: raw.Critical}
	for _, it := range []struct {
		name string
		raw  *rawNameConstraintItem
		out  **NameConstraintItem
	}{{"permitted", raw.Permitted, &nc.Permitted}, {"excluded", raw.Excluded, &nc.Excluded}} {
		if it.raw == nil {
			continue
		}
		at := field + "." + it.name
		for i, cidr := range it.raw.IPRanges {
			if _, _, err := net.ParseCIDR(cidr); err != nil {
				return d.fail(fmt.Sprintf("%s.ipRanges[%d]", at, i), "%q: invalid CIDR address", clip(cidr))
			}
		}
		for _, l := range []struct {
			name   string
			values []string
		}{{"dnsDomains", it.raw.DNSDomains}, {"emailAddresses", it.raw.EmailAddresses}, {"uriDomains", it.raw.URIDomains}} {
			for i, v := range l.values {
				if !isASCII(v) {
					return d.fail(fmt.Sprintf("%s.%s[%d]", at, l.name, i), "%q cannot be encoded as an IA5String: name constraints are ASCII", clip(v))
				}
			}
		}
		*it.out = &NameConstraintItem{DNSDomains: it.raw.DNSDomains, IPRanges: it.raw.IPRanges,
			EmailAddresses: it.raw.EmailAddresses, URIDomains: it.raw.URIDomains}
	}
	c.NameConstraints = nc
	return nil
}

// parseOutputs reads spec.additionalOutputFormats and spec.keystores.
func parseOutputs(d *document, c *Certificate, formats []string, ks *rawKeystores) error {
	seen := map[string]bool{}
	for i, f := range formats {
		field := fmt.Sprintf("spec.additionalOutputFormats[%d].type", i)
		if f != OutputDER && f != OutputCombinedPEM {
			return d.fail(field, "Unsupported value: %q: supported values: %q, %q", clip(f), OutputDER, OutputCombinedPEM)
		}
		if seen[f] {
			return d.fail(field, "Duplicate value: %q", f)
		}
		seen[f] = true
	}
	c.AdditionalOutputFormats = nonEmpty(formats)
	if ks == nil {
		return nil
	}
	if p := ks.PKCS12; p != nil {
		pw, err := keystorePassword(d, "spec.keystores.pkcs12", "PKCS#12", p.PasswordSecretRef, p.Password)
		if err != nil {
			return err
		}
		profile := p.Profile
		switch profile {
		case "":
			profile = PKCS12LegacyRC2
		case PKCS12LegacyRC2, PKCS12LegacyDES, PKCS12Modern2023, PKCS12Modern2026:
		default:
			return d.fail("spec.keystores.pkcs12.profile", "Unsupported value: %q: supported values: %q, %q, %q, %q",
				clip(profile), PKCS12LegacyRC2, PKCS12LegacyDES, PKCS12Modern2023, PKCS12Modern2026)
		}
		c.Keystores.PKCS12 = &PKCS12Keystore{Create: p.Create, Profile: profile, Password: pw}
	}
	if j := ks.JKS; j != nil {
		pw, err := keystorePassword(d, "spec.keystores.jks", "JKS", j.PasswordSecretRef, j.Password)
		if err != nil {
			return err
		}
		alias := DefaultJKSAlias
		if j.Alias != nil {
			alias = *j.Alias
		}
		c.Keystores.JKS = &JKSKeystore{Create: j.Create, Alias: alias, Password: pw}
	}
	return nil
}

// keystorePassword applies cert-manager's password rules of one keystore
// (its messages, kind "JKS" or "PKCS#12"), then certsync's own: the
// Secret reference must name a valid Secret and a key, since the password
// is read from that key when the keystore is written.
func keystorePassword(d *document, field, kind string, ref rawSecretKeySelector, literal *string) (KeystorePassword, error) {
	switch {
	case literal != nil && ref.Name != "":
		return KeystorePassword{}, d.fail(field, "exactly one of passwordSecretRef and password must be provided for %s keystores; cannot set both", kind)
	case literal == nil && ref.Name == "":
		return KeystorePassword{}, d.fail(field, "must set exactly one of passwordSecretRef and password must for %s keystores", kind)
	case literal != nil && *literal == "":
		return KeystorePassword{}, d.fail(field+".password", "literal password cannot be empty if set on %s keystores", kind)
	case literal != nil:
		return KeystorePassword{Literal: *literal}, nil
	}
	if msgs := validation.IsDNS1123Subdomain(ref.Name); len(msgs) > 0 {
		return KeystorePassword{}, d.fail(field+".passwordSecretRef.name", "%q is not a valid Secret name: %s", clip(ref.Name), strings.Join(msgs, "; "))
	}
	if ref.Key == "" {
		return KeystorePassword{}, d.fail(field+".passwordSecretRef", "key is required: the password is read from that key of Secret %s (cert-manager would fail when it writes the keystore)", ref.Name)
	}
	return KeystorePassword{SecretRef: SecretKeySelector{Name: ref.Name, Key: ref.Key}}, nil
}

// parseRevisionHistoryLimit checks spec.revisionHistoryLimit as
// cert-manager does; the value has no effect in certsync.
func parseRevisionHistoryLimit(d *document, c *Certificate, limit *int) error {
	if limit == nil {
		return nil
	}
	if *limit < 1 {
		return d.fail("spec.revisionHistoryLimit", "%d: must not be less than 1", *limit)
	}
	c.RevisionHistoryLimit = *limit
	return nil
}
