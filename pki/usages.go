package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	casn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certsync/certsync/declared"
)

// keyUsages and extKeyUsages map cert-manager's usage names to X.509.
var (
	keyUsages = map[string]x509.KeyUsage{
		"signing":            x509.KeyUsageDigitalSignature,
		"digital signature":  x509.KeyUsageDigitalSignature,
		"content commitment": x509.KeyUsageContentCommitment,
		"key encipherment":   x509.KeyUsageKeyEncipherment,
		"key agreement":      x509.KeyUsageKeyAgreement,
		"data encipherment":  x509.KeyUsageDataEncipherment,
		"cert sign":          x509.KeyUsageCertSign,
		"crl sign":           x509.KeyUsageCRLSign,
		"encipher only":      x509.KeyUsageEncipherOnly,
		"decipher only":      x509.KeyUsageDecipherOnly,
	}
	extKeyUsages = map[string]x509.ExtKeyUsage{
		"any":              x509.ExtKeyUsageAny,
		"server auth":      x509.ExtKeyUsageServerAuth,
		"client auth":      x509.ExtKeyUsageClientAuth,
		"code signing":     x509.ExtKeyUsageCodeSigning,
		"email protection": x509.ExtKeyUsageEmailProtection,
		"s/mime":           x509.ExtKeyUsageEmailProtection,
		"ipsec end system": x509.ExtKeyUsageIPSECEndSystem,
		"ipsec tunnel":     x509.ExtKeyUsageIPSECTunnel,
		"ipsec user":       x509.ExtKeyUsageIPSECUser,
		"timestamping":     x509.ExtKeyUsageTimeStamping,
		"ocsp signing":     x509.ExtKeyUsageOCSPSigning,
		"microsoft sgc":    x509.ExtKeyUsageMicrosoftServerGatedCrypto,
		"netscape sgc":     x509.ExtKeyUsageNetscapeServerGatedCrypto,
	}
	// extKeyUsageOIDs are RFC 5280's (and the vendors') OIDs.
	extKeyUsageOIDs = map[x509.ExtKeyUsage]asn1.ObjectIdentifier{
		x509.ExtKeyUsageAny:                        {2, 5, 29, 37, 0},
		x509.ExtKeyUsageServerAuth:                 {1, 3, 6, 1, 5, 5, 7, 3, 1},
		x509.ExtKeyUsageClientAuth:                 {1, 3, 6, 1, 5, 5, 7, 3, 2},
		x509.ExtKeyUsageCodeSigning:                {1, 3, 6, 1, 5, 5, 7, 3, 3},
		x509.ExtKeyUsageEmailProtection:            {1, 3, 6, 1, 5, 5, 7, 3, 4},
		x509.ExtKeyUsageIPSECEndSystem:             {1, 3, 6, 1, 5, 5, 7, 3, 5},
		x509.ExtKeyUsageIPSECTunnel:                {1, 3, 6, 1, 5, 5, 7, 3, 6},
		x509.ExtKeyUsageIPSECUser:                  {1, 3, 6, 1, 5, 5, 7, 3, 7},
		x509.ExtKeyUsageTimeStamping:               {1, 3, 6, 1, 5, 5, 7, 3, 8},
		x509.ExtKeyUsageOCSPSigning:                {1, 3, 6, 1, 5, 5, 7, 3, 9},
		x509.ExtKeyUsageMicrosoftServerGatedCrypto: {1, 3, 6, 1, 4, 1, 311, 10, 3, 3},
		x509.ExtKeyUsageNetscapeServerGatedCrypto:  {2, 16, 840, 1, 113730, 4, 1},
	}
)

// KeyUsages is what c asks for in X.509 terms, as cert-manager's
// KeyUsagesForCertificateOrCertificateRequest computes it: the key usage
// bits and extended key usages of spec.usages (cert-manager's default,
// digital signature and key encipherment, when it is empty), plus cert
// sign for isCA. Extended usages are listed once each, in the order
// written. The reconciler hands both to the issuer (issuer.Request) even
// when the request leaves them out (spec.encodeUsagesInRequest: false).
func KeyUsages(c *declared.Certificate) (x509.KeyUsage, []x509.ExtKeyUsage, error) {
	var ku x509.KeyUsage
	var eku []x509.ExtKeyUsage
	if c.IsCA {
		ku |= x509.KeyUsageCertSign
	}
	for _, u := range c.EffectiveUsages() {
		if k, ok := keyUsages[u]; ok {
			ku |= k
		} else if e, ok := extKeyUsages[u]; ok {
			if !slices.Contains(eku, e) {
				eku = append(eku, e)
			}
		} else {
			return 0, nil, fmt.Errorf("unknown key usage %q", u)
		}
	}
	return ku, eku, nil
}

// marshalKeyUsage is the value of the keyUsage extension: a BIT STRING
// whose bit 0 is digital signature, with trailing zero bits dropped.
func marshalKeyUsage(ku x509.KeyUsage) ([]byte, error) {
	var bits [2]byte
	for i := 0; i < 9; i++ {
		if ku&(1<<i) != 0 {
			bits[i/8] |= 0x80 >> (i % 8)
		}
	}
	n := 1
	if bits[1] != 0 {
		n = 2
	}
	s := asn1.BitString{Bytes: bits[:n], BitLength: n * 8}
	for s.BitLength > 0 && s.At(s.BitLength-1) == 0 {
		s.BitLength--
	}
	v, err := asn1.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode key usage: %w", err)
	}
	return v, nil
}

func parseKeyUsage(v []byte) (x509.KeyUsage, error) {
	var s asn1.BitString
	if rest, err := asn1.Unmarshal(v, &s); err != nil || len(rest) != 0 {
		return 0, errors.New("malformed key usage extension")
	}
	var ku x509.KeyUsage
	for i := 0; i < 9; i++ {
		if s.At(i) != 0 {
			ku |= 1 << i
		}
	}
	return ku, nil
}

func marshalExtKeyUsage(eku []x509.ExtKeyUsage) ([]byte, error) {
	oids := make([]asn1.ObjectIdentifier, 0, len(eku))
	for _, u := range eku {
		oid, ok := extKeyUsageOIDs[u]
		if !ok {
			return nil, fmt.Errorf("encode extended key usage: unknown usage %d", u)
		}
		oids = append(oids, oid)
	}
	v, err := asn1.Marshal(oids)
	if err != nil {
		return nil, fmt.Errorf("encode extended key usage: %w", err)
	}
	return v, nil
}

func parseExtKeyUsage(v []byte) ([]x509.ExtKeyUsage, []asn1.ObjectIdentifier, error) {
	var oids []asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(v, &oids); err != nil || len(rest) != 0 {
		return nil, nil, errors.New("malformed extended key usage extension")
	}
	var known []x509.ExtKeyUsage
	var unknown []asn1.ObjectIdentifier
next:
	for _, oid := range oids {
		for u, o := range extKeyUsageOIDs {
			if o.Equal(oid) {
				known = append(known, u)
				continue next
			}
		}
		unknown = append(unknown, oid)
	}
	return known, unknown, nil
}

// ApplyRequested copies into tmpl what csr asks of a signing CA beyond
// what x509.ParseCertificateRequest reads (subject, key and the DNS, IP,
// URI and email SANs), as cert-manager's CertificateTemplateFromCSR does
// for its ca and selfSigned issuers:
//
//   - key usage and extended key usage (KeyUsage, ExtKeyUsage,
//     UnknownExtKeyUsage);
//   - basic constraints (BasicConstraintsValid, IsCA; no path length);
//   - name constraints (Permitted* and Excluded*; their criticality in
//     PermittedDNSDomainsCritical);
//   - the subjectAltName extension itself, appended to ExtraExtensions:
//     it keeps the otherName SANs, which x509.CertificateRequest drops,
//     and is critical when the subject is empty.
//
// An extension the request lacks leaves tmpl as it was: set the
// defaults first (issuer.Request's KeyUsage, ExtKeyUsage and IsCA, which
// the reconciler fills from the same declaration). An error means a
// malformed extension; retrying the same request cannot help.
func ApplyRequested(tmpl *x509.Certificate, csr *x509.CertificateRequest) error {
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidKeyUsage):
			ku, err := parseKeyUsage(ext.Value)
			if err != nil {
				return err
			}
			tmpl.KeyUsage = ku
		case ext.Id.Equal(oidExtKeyUsage):
			known, unknown, err := parseExtKeyUsage(ext.Value)
			if err != nil {
				return err
			}
			tmpl.ExtKeyUsage, tmpl.UnknownExtKeyUsage = known, unknown
		case ext.Id.Equal(oidBasicConstraints):
			var bc basicConstraints
			if rest, err := asn1.UnmarshalWithParams(ext.Value, &bc, ""); err != nil || len(rest) != 0 {
				return errors.New("malformed basic constraints extension")
			}
			tmpl.BasicConstraintsValid, tmpl.IsCA = true, bc.IsCA
			tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, false
		case ext.Id.Equal(oidNameConstraints):
			if err := parseNameConstraints(tmpl, ext); err != nil {
				return err
			}
		case ext.Id.Equal(oidSubjectAltName):
			san := ext
			san.Critical = isEmptySubject(csr.RawSubject)
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, san)
		}
	}
	return nil
}

// parseNameConstraints reads a nameConstraints extension into tmpl.
func parseNameConstraints(tmpl *x509.Certificate, ext pkix.Extension) error {
	bad := errors.New("malformed name constraints extension")
	in := cryptobyte.String(ext.Value)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, casn1.SEQUENCE) || !in.Empty() {
		return bad
	}
	read := func(tag int, dns, emails, uris *[]string, ips *[]*net.IPNet) error {
		var subtrees cryptobyte.String
		var present bool
		if !seq.ReadOptionalASN1(&subtrees, &present, casn1.Tag(tag).ContextSpecific().Constructed()) {
			return bad
		}
		for !subtrees.Empty() {
			var subtree, value cryptobyte.String
			var t casn1.Tag
			if !subtrees.ReadASN1(&subtree, casn1.SEQUENCE) || !subtree.ReadAnyASN1(&value, &t) {
				return bad
			}
			switch t {
			case casn1.Tag(tagDNSName).ContextSpecific():
				*dns = append(*dns, string(value))
			case casn1.Tag(tagRFC822Name).ContextSpecific():
				*emails = append(*emails, string(value))
			case casn1.Tag(tagURI).ContextSpecific():
				*uris = append(*uris, string(value))
			case casn1.Tag(tagIPAddress).ContextSpecific():
				n := len(value) / 2
				if len(value) != 8 && len(value) != 32 {
					return bad
				}
				*ips = append(*ips, &net.IPNet{IP: net.IP(slices.Clone(value[:n])), Mask: net.IPMask(slices.Clone(value[n:]))})
			default:
				return fmt.Errorf("name constraints: unsupported name type %d", t&^0xe0)
			}
		}
		return nil
	}
	if err := read(0, &tmpl.PermittedDNSDomains, &tmpl.PermittedEmailAddresses, &tmpl.PermittedURIDomains, &tmpl.PermittedIPRanges); err != nil {
		return err
	}
	if err := read(1, &tmpl.ExcludedDNSDomains, &tmpl.ExcludedEmailAddresses, &tmpl.ExcludedURIDomains, &tmpl.ExcludedIPRanges); err != nil {
		return err
	}
	if !seq.Empty() {
		return bad
	}
	tmpl.PermittedDNSDomainsCritical = ext.Critical
	return nil
}
