package pki

import (
	"crypto"
	"crypto/rand"
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
	"github.com/certsync/certsync/internal/rfc4514"
)

// Extension OIDs of RFC 5280.
var (
	oidSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidNameConstraints  = asn1.ObjectIdentifier{2, 5, 29, 30}
)

// CSR builds the certificate request for c, signed with key, as
// cert-manager's GenerateCSR builds it with its literal-subject,
// otherNames and name-constraints features on (their default):
//
//   - the subject: spec.literalSubject as written (RFC 4514), or the
//     commonName with the attributes of spec.subject;
//   - one subjectAltName extension with the DNS names, email addresses,
//     IP addresses, URIs and otherNames, in that order, critical when the
//     subject is empty (RFC 5280 section 4.2.1.6);
//   - unless spec.encodeUsagesInRequest is false, the key usage extension
//     (critical) and, when any is asked for, the extended key usage one,
//     from KeyUsages;
//   - for isCA, basic constraints CA:TRUE (critical): cert-manager puts it
//     in the CertificateRequest's spec.isCA and in the CSR only behind a
//     feature gate; certsync always writes it, so the request alone says
//     what it asks for;
//   - spec.nameConstraints, critical when spec.nameConstraints.critical.
//
// x509.ParseCertificateRequest reads the subject and the usual SANs of
// the result; ApplyRequested reads the rest for a signing CA.
func CSR(c *declared.Certificate, key crypto.Signer) (*x509.CertificateRequest, error) {
	subject, err := subjectDER(c)
	if err != nil {
		return nil, err
	}
	exts, err := requestExtensions(c, isEmptySubject(subject))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{RawSubject: subject, ExtraExtensions: exts}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("read back the certificate request: %w", err)
	}
	if csr.Subject.CommonName == "" && len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.URIs)+len(csr.EmailAddresses)+len(c.OtherNames) == 0 {
		return nil, errors.New("certificate request has no names")
	}
	return csr, nil
}

// subjectDER is the DER of the request's subject.
func subjectDER(c *declared.Certificate) ([]byte, error) {
	var seq pkix.RDNSequence
	if c.LiteralSubject != "" {
		var err error
		if seq, err = rfc4514.Parse(c.LiteralSubject); err != nil {
			return nil, fmt.Errorf("spec.literalSubject: %w", err)
		}
		if v, unknown := rfc4514.Unknown(seq); unknown {
			return nil, fmt.Errorf("spec.literalSubject: unrecognized attribute type with value [%s]", v)
		}
	} else {
		s := c.Subject
		seq = pkix.Name{
			Country: s.Countries, Organization: s.Organizations, OrganizationalUnit: s.OrganizationalUnits,
			Locality: s.Localities, Province: s.Provinces, StreetAddress: s.StreetAddresses,
			PostalCode: s.PostalCodes, SerialNumber: s.SerialNumber, CommonName: c.CommonName,
		}.ToRDNSequence()
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		return nil, fmt.Errorf("encode the subject: %w", err)
	}
	return der, nil
}

// isEmptySubject reports whether a DER subject is the empty SEQUENCE.
func isEmptySubject(der []byte) bool { return len(der) == 2 && der[0] == 0x30 && der[1] == 0 }

// requestExtensions are the extensions CSR writes, in its order.
func requestExtensions(c *declared.Certificate, emptySubject bool) ([]pkix.Extension, error) {
	var exts []pkix.Extension
	san, ok, err := marshalSANs(c)
	if err != nil {
		return nil, err
	}
	if ok {
		exts = append(exts, pkix.Extension{Id: oidSubjectAltName, Critical: emptySubject, Value: san})
	}
	if !c.UsagesNotInRequest {
		ku, eku, err := KeyUsages(c)
		if err != nil {
			return nil, err
		}
		if ku != 0 {
			v, err := marshalKeyUsage(ku)
			if err != nil {
				return nil, err
			}
			exts = append(exts, pkix.Extension{Id: oidKeyUsage, Critical: true, Value: v})
		}
		if len(eku) > 0 {
			v, err := marshalExtKeyUsage(eku)
			if err != nil {
				return nil, err
			}
			exts = append(exts, pkix.Extension{Id: oidExtKeyUsage, Value: v})
		}
	}
	if c.IsCA {
		v, err := asn1.Marshal(basicConstraints{IsCA: true, MaxPathLen: -1})
		if err != nil {
			return nil, fmt.Errorf("encode basic constraints: %w", err)
		}
		exts = append(exts, pkix.Extension{Id: oidBasicConstraints, Critical: true, Value: v})
	}
	if nc := c.NameConstraints; nc != nil && !(nc.Permitted.IsEmpty() && nc.Excluded.IsEmpty()) {
		v, err := marshalNameConstraints(nc)
		if err != nil {
			return nil, err
		}
		exts = append(exts, pkix.Extension{Id: oidNameConstraints, Critical: nc.Critical, Value: v})
	}
	return exts, nil
}

// basicConstraints is RFC 5280's BasicConstraints; MaxPathLen -1 is
// omitted (no limit).
type basicConstraints struct {
	IsCA       bool `asn1:"optional"`
	MaxPathLen int  `asn1:"optional,default:-1"`
}

// GeneralName tags (RFC 5280 section 4.2.1.6).
const (
	tagOtherName  = 0
	tagRFC822Name = 1
	tagDNSName    = 2
	tagURI        = 6
	tagIPAddress  = 7
)

// marshalSANs is the value of the subjectAltName extension, and false
// when c has no SAN.
func marshalSANs(c *declared.Certificate) ([]byte, bool, error) {
	if len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses)+len(c.URIs)+len(c.OtherNames) == 0 {
		return nil, false, nil
	}
	var problem error
	ia5 := func(b *cryptobyte.Builder, tag int, what, v string) {
		for i := 0; i < len(v); i++ {
			if v[i] >= 0x80 && problem == nil {
				problem = fmt.Errorf("%s %q cannot be encoded as an IA5String", what, v)
			}
		}
		b.AddASN1(casn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(v)) })
	}
	var b cryptobyte.Builder
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, v := range c.DNSNames {
			ia5(b, tagDNSName, "DNS name", v)
		}
		for _, v := range c.EmailAddresses {
			ia5(b, tagRFC822Name, "email address", v)
		}
		for _, v := range c.IPAddresses {
			ip := net.ParseIP(v)
			if ip == nil {
				if problem == nil {
					problem = fmt.Errorf("invalid IP address %q", v)
				}
				continue
			}
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			b.AddASN1(casn1.Tag(tagIPAddress).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ip) })
		}
		for _, v := range c.URIs {
			ia5(b, tagURI, "URI", v)
		}
		for _, o := range c.OtherNames {
			oid, err := rfc4514.ParseOID(o.OID)
			if err != nil {
				if problem == nil {
					problem = fmt.Errorf("otherName: %w", err)
				}
				continue
			}
			// OtherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY },
			// here [0] IMPLICIT inside the GeneralName CHOICE.
			b.AddASN1(casn1.Tag(tagOtherName).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oid)
				b.AddASN1(casn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1(casn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(o.UTF8Value)) })
				})
			})
		}
	})
	if problem != nil {
		return nil, false, fmt.Errorf("subject alternative names: %w", problem)
	}
	der, err := b.Bytes()
	if err != nil {
		return nil, false, fmt.Errorf("encode subject alternative names: %w", err)
	}
	return der, true, nil
}

// marshalNameConstraints is the value of the nameConstraints extension.
func marshalNameConstraints(nc *declared.NameConstraints) ([]byte, error) {
	subtrees := func(item *declared.NameConstraintItem) ([]byte, error) {
		var b cryptobyte.Builder
		general := func(tag int, v []byte) {
			b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(casn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(v) })
			})
		}
		for _, v := range item.DNSDomains {
			general(tagDNSName, []byte(v))
		}
		for _, v := range item.IPRanges {
			_, n, err := net.ParseCIDR(v)
			if err != nil {
				return nil, fmt.Errorf("name constraint %q: %w", v, err)
			}
			general(tagIPAddress, append(slices.Clone([]byte(n.IP)), n.Mask...))
		}
		for _, v := range item.EmailAddresses {
			general(tagRFC822Name, []byte(v))
		}
		for _, v := range item.URIDomains {
			general(tagURI, []byte(v))
		}
		return b.Bytes()
	}
	var b cryptobyte.Builder
	var problem error
	b.AddASN1(casn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for i, item := range []*declared.NameConstraintItem{nc.Permitted, nc.Excluded} {
			if item.IsEmpty() {
				continue
			}
			der, err := subtrees(item)
			if err != nil {
				problem = err
				return
			}
			b.AddASN1(casn1.Tag(i).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddBytes(der) })
		}
	})
	if problem != nil {
		return nil, problem
	}
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode name constraints: %w", err)
	}
	return der, nil
}
