package declared

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"slices"
	"strconv"
	"strings"
)

// The parts of cert-manager's Certificate spec beyond names, lifetime and
// key: subject, further SANs, key usages, name constraints, and the extra
// outputs of the Secret. Their rules are in fieldcheck.go; ACME's limits
// on them in acmefields.go.

// OtherName is one entry of spec.otherNames: a SAN of type otherName
// whose value is a UTF-8 string (a Microsoft UPN is OID
// 1.3.6.1.4.1.311.20.2.3).
type OtherName struct {
	OID       string
	UTF8Value string
}

// Subject is spec.subject: the subject attributes other than the common
// name, each in the order written.
type Subject struct {
	Organizations       []string
	Countries           []string
	OrganizationalUnits []string
	Localities          []string
	Provinces           []string
	StreetAddresses     []string
	PostalCodes         []string
	SerialNumber        string
}

// IsZero reports whether no attribute is set.
func (s Subject) IsZero() bool {
	return len(s.Organizations)+len(s.Countries)+len(s.OrganizationalUnits)+len(s.Localities)+
		len(s.Provinces)+len(s.StreetAddresses)+len(s.PostalCodes) == 0 && s.SerialNumber == ""
}

// fields lists the attributes set, by field name, for messages.
func (s Subject) fields() []string {
	var out []string
	for _, f := range []struct {
		name string
		n    int
	}{
		{"organizations", len(s.Organizations)}, {"countries", len(s.Countries)},
		{"organizationalUnits", len(s.OrganizationalUnits)}, {"localities", len(s.Localities)},
		{"provinces", len(s.Provinces)}, {"streetAddresses", len(s.StreetAddresses)},
		{"postalCodes", len(s.PostalCodes)}, {"serialNumber", len(s.SerialNumber)},
	} {
		if f.n > 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// NameConstraints is spec.nameConstraints (RFC 5280 section 4.2.1.10).
type NameConstraints struct {
	Critical  bool
	Permitted *NameConstraintItem
	Excluded  *NameConstraintItem
}

// NameConstraintItem is spec.nameConstraints.permitted or .excluded.
// IPRanges are CIDRs ("10.0.0.0/8").
type NameConstraintItem struct {
	DNSDomains     []string
	IPRanges       []string
	EmailAddresses []string
	URIDomains     []string
}

// IsEmpty reports whether the item constrains nothing; nil is empty.
func (i *NameConstraintItem) IsEmpty() bool {
	return i == nil || len(i.DNSDomains)+len(i.IPRanges)+len(i.EmailAddresses)+len(i.URIDomains) == 0
}

// Key usages as cert-manager spells them in spec.usages.
const (
	UsageSigning          = "signing" // another name for digital signature
	UsageDigitalSignature = "digital signature"
	UsageKeyEncipherment  = "key encipherment"
	UsageCertSign         = "cert sign"
	UsageServerAuth       = "server auth"
	UsageClientAuth       = "client auth"
)

// keyUsageNames are the key usages (KeyUsage extension) and
// extKeyUsageNames the extended key usages cert-manager accepts, in its
// order.
var (
	keyUsageNames = []string{
		UsageSigning, UsageDigitalSignature, "content commitment", UsageKeyEncipherment,
		"key agreement", "data encipherment", UsageCertSign, "crl sign",
		"encipher only", "decipher only",
	}
	extKeyUsageNames = []string{
		"any", UsageServerAuth, UsageClientAuth, "code signing", "email protection",
		"s/mime", "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping",
		"ocsp signing", "microsoft sgc", "netscape sgc",
	}
)

// KnownUsages are the usages cert-manager accepts in spec.usages: the key
// usages, then the extended ones.
func KnownUsages() []string { return slices.Concat(keyUsageNames, extKeyUsageNames) }

// knownUsage reports whether cert-manager accepts u in spec.usages.
func knownUsage(u string) bool {
	return slices.Contains(keyUsageNames, u) || slices.Contains(extKeyUsageNames, u)
}

// DefaultUsages are cert-manager's usages when spec.usages is empty
// (v1.DefaultKeyUsages). "server auth" is not among them: cert-manager
// leaves it to the CA, since it breaks clients of an isCA certificate.
func DefaultUsages() []string { return []string{UsageDigitalSignature, UsageKeyEncipherment} }

// EffectiveUsages is the usages the certificate asks for: Usages, or
// DefaultUsages when none are written.
func (c *Certificate) EffectiveUsages() []string {
	if len(c.Usages) == 0 {
		return DefaultUsages()
	}
	return c.Usages
}

// Additional output formats (spec.additionalOutputFormats[].type).
const (
	// OutputCombinedPEM writes tls-combined.pem: tls.key, a newline, tls.crt.
	OutputCombinedPEM = "CombinedPEM"
	// OutputDER writes key.der: the private key's DER.
	OutputDER = "DER"
)

// PKCS#12 profiles (spec.keystores.pkcs12.profile), as go-pkcs12's
// encoders; cert-manager's default is LegacyRC2.
const (
	PKCS12LegacyRC2  = "LegacyRC2"
	PKCS12LegacyDES  = "LegacyDES"
	PKCS12Modern2023 = "Modern2023"
	PKCS12Modern2026 = "Modern2026"
)

// DefaultJKSAlias is the alias of the key in keystore.jks when
// spec.keystores.jks.alias is unset: cert-manager's.
const DefaultJKSAlias = "certificate"

// Keystores is spec.keystores; a nil member asks for nothing.
type Keystores struct {
	PKCS12 *PKCS12Keystore
	JKS    *JKSKeystore
}

// PKCS12Keystore is spec.keystores.pkcs12 after defaulting (Profile
// LegacyRC2). With Create false cert-manager writes nothing, and neither
// does certsync.
type PKCS12Keystore struct {
	Create   bool
	Profile  string
	Password KeystorePassword
}

// JKSKeystore is spec.keystores.jks after defaulting (Alias
// DefaultJKSAlias).
type JKSKeystore struct {
	Create   bool
	Alias    string
	Password KeystorePassword
}

// KeystorePassword is where a keystore's password comes from: one key of
// a Secret in the Certificate's namespace (SecretRef, read through the
// issuers' SecretGetter: SOPS-encrypted in the repository), or the
// literal spec field. Exactly one is set.
type KeystorePassword struct {
	SecretRef SecretKeySelector
	// Literal is the password written in the manifest. It is never
	// printed: not in JSON, and %v shows "[literal]".
	Literal string `json:"-"`
}

// String never shows a literal password.
func (p KeystorePassword) String() string {
	if p.SecretRef.Name != "" {
		return "Secret " + p.SecretRef.Name + "[" + p.SecretRef.Key + "]"
	}
	return "[literal]"
}

// GoString is String, so %#v hides the password too.
func (p KeystorePassword) GoString() string { return p.String() }

// digest identifies the password's source without showing a literal one.
func (p KeystorePassword) digest() string {
	if p.SecretRef.Name != "" {
		return "ref=" + p.SecretRef.Name + "/" + p.SecretRef.Key
	}
	sum := sha256.Sum256([]byte("certsync keystore password\x00" + p.Literal))
	return "literal=" + hex.EncodeToString(sum[:8])
}

// OutputsHash is a short digest of what the Secret holds beyond tls.crt,
// tls.key and ca.crt: the additional output formats and the keystores
// that are created (profile, alias, where the password comes from). It is
// "" when there are none, so a Secret without extra outputs records
// nothing. The committed Secret records it: a change re-issues the
// certificate, since certsync renders these keys when it issues.
func (c *Certificate) OutputsHash() string {
	var parts []string
	if len(c.AdditionalOutputFormats) > 0 {
		f := slices.Clone(c.AdditionalOutputFormats)
		slices.Sort(f)
		parts = append(parts, "formats="+strings.Join(slices.Compact(f), ","))
	}
	if k := c.Keystores.PKCS12; k != nil && k.Create {
		parts = append(parts, "pkcs12="+k.Profile+","+k.Password.digest())
	}
	if k := c.Keystores.JKS; k != nil && k.Create {
		parts = append(parts, "jks="+k.Alias+","+k.Password.digest())
	}
	if len(parts) == 0 {
		return ""
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}

// requestParts are the SpecHash parts of the fields added after the
// first release: each only when set (and usages only when they differ
// from the default), so the hash of a certificate that uses none of them
// is what it always was and an upgrade re-issues nothing. Lists whose
// order does not matter to the certificate are sorted.
func (c *Certificate) requestParts() []string {
	var out []string
	add := func(name string, values []string, sorted bool) {
		if len(values) == 0 {
			return
		}
		if sorted {
			values = slices.Clone(values)
			slices.Sort(values)
		}
		out = append(out, name+"="+strings.Join(values, "\x01"))
	}
	ips := make([]string, 0, len(c.IPAddresses))
	for _, ip := range c.IPAddresses {
		if p := net.ParseIP(ip); p != nil {
			ip = p.String()
		}
		ips = append(ips, ip)
	}
	add("ip", ips, true)
	add("uri", c.URIs, true)
	add("email", c.EmailAddresses, true)
	others := make([]string, 0, len(c.OtherNames))
	for _, o := range c.OtherNames {
		others = append(others, o.OID+"="+o.UTF8Value)
	}
	add("other", others, true)
	s := c.Subject
	add("o", s.Organizations, false)
	add("c", s.Countries, false)
	add("ou", s.OrganizationalUnits, false)
	add("l", s.Localities, false)
	add("st", s.Provinces, false)
	add("street", s.StreetAddresses, false)
	add("postal", s.PostalCodes, false)
	if s.SerialNumber != "" {
		out = append(out, "serial="+s.SerialNumber)
	}
	if c.LiteralSubject != "" {
		out = append(out, "literal="+c.LiteralSubject)
	}
	if u := canonicalUsages(c.Usages); len(c.Usages) > 0 && !slices.Equal(u, canonicalUsages(DefaultUsages())) {
		add("usages", u, false)
	}
	if nc := c.NameConstraints; nc != nil {
		item := func(i *NameConstraintItem) string {
			if i == nil {
				return "-"
			}
			return strings.Join([]string{
				strings.Join(i.DNSDomains, ","), strings.Join(i.IPRanges, ","),
				strings.Join(i.EmailAddresses, ","), strings.Join(i.URIDomains, ","),
			}, ";")
		}
		out = append(out, "nc="+strconv.FormatBool(nc.Critical)+"|"+item(nc.Permitted)+"|"+item(nc.Excluded))
	}
	return out
}

// canonicalUsages sorts usages, writes cert-manager's synonyms one way
// ("signing" is "digital signature", "s/mime" is "email protection") and
// drops repeats: two lists that ask for the same certificate are equal.
func canonicalUsages(usages []string) []string {
	out := make([]string, 0, len(usages))
	for _, u := range usages {
		switch u {
		case UsageSigning:
			u = UsageDigitalSignature
		case "s/mime":
			u = "email protection"
		}
		out = append(out, u)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
