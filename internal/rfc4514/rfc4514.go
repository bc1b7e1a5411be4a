// Package rfc4514 reads the string form of an X.509 distinguished name
// (RFC 4514, "CN=web,O=Example\, Inc.,C=NL") the way cert-manager reads
// a Certificate's spec.literalSubject, so a subject means the same thing
// under both tools.
//
// cert-manager parses the string with go-ldap's ParseDN and maps the
// attribute types it knows (CN, O, OU, C, L, ST, STREET, SERIALNUMBER,
// DC, UID, written in upper case as in RFC 4514's table) to their object
// identifiers; any other type must be a dotted OID. This package does the
// same without the LDAP client: it is the one place certsync parses a
// literal subject, for validation (package declared) and for the
// certificate request (package pki).
package rfc4514

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Attribute type OIDs, as cert-manager names them (read-only).
var (
	oidCountry            = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidOrganization       = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrganizationalUnit = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidCommonName         = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSerialNumber       = asn1.ObjectIdentifier{2, 5, 4, 5}
	oidLocality           = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidProvince           = asn1.ObjectIdentifier{2, 5, 4, 8}
	oidStreetAddress      = asn1.ObjectIdentifier{2, 5, 4, 9}
	oidDomainComponent    = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidUserID             = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
)

// typeNames are the short names cert-manager maps, case as written there.
var typeNames = map[string]asn1.ObjectIdentifier{
	"C":            oidCountry,
	"O":            oidOrganization,
	"OU":           oidOrganizationalUnit,
	"CN":           oidCommonName,
	"SERIALNUMBER": oidSerialNumber,
	"L":            oidLocality,
	"ST":           oidProvince,
	"STREET":       oidStreetAddress,
	"DC":           oidDomainComponent,
	"UID":          oidUserID,
}

// Parse reads s into the RDN sequence of a certificate's subject. The
// sequence is in ASN.1 order, the reverse of the string's: "CN=web,O=Ex"
// puts O first. Values are strings. An attribute type that is neither a
// known short name nor a dotted OID is returned with a nil Type, as
// cert-manager does; Unknown reports it. A blank s is an empty sequence.
func Parse(s string) (pkix.RDNSequence, error) {
	if strings.TrimSpace(s) == "" {
		return pkix.RDNSequence{}, nil
	}
	var (
		rdns     []pkix.RelativeDistinguishedNameSET
		rdn      pkix.RelativeDistinguishedNameSET
		typ      string
		haveType bool
		escaping bool
		start    int
	)
	finish := func(value string, endRDN bool) error {
		v, err := decodeValue(value)
		if err != nil {
			return err
		}
		rdn = append(rdn, pkix.AttributeTypeAndValue{Type: typeOID(typ), Value: v})
		typ, haveType = "", false
		if endRDN {
			rdns = append(rdns, rdn)
			rdn = nil
		}
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaping:
			escaping = false
		case c == '\\':
			escaping = true
		case c == '=' && !haveType:
			t, err := decodeString(s[start:i])
			if err != nil {
				return nil, err
			}
			typ, haveType, start = t, true, i+1
		case c == ',' || c == '+' || c == ';':
			if !haveType {
				return nil, errors.New("incomplete type, value pair")
			}
			if err := finish(s[start:i], c != '+'); err != nil {
				return nil, err
			}
			start = i + 1
		}
	}
	if !haveType {
		return nil, errors.New("DN ended with incomplete type, value pair")
	}
	if err := finish(s[start:], true); err != nil {
		return nil, err
	}
	out := make(pkix.RDNSequence, 0, len(rdns))
	for i := len(rdns) - 1; i >= 0; i-- {
		out = append(out, rdns[i])
	}
	return out, nil
}

// Unknown returns the value of the first attribute whose type Parse
// could not map, and whether there is one.
func Unknown(seq pkix.RDNSequence) (string, bool) {
	for _, rdn := range seq {
		for _, atv := range rdn {
			if atv.Type == nil {
				return fmt.Sprint(atv.Value), true
			}
		}
	}
	return "", false
}

// CommonName is the first CN of the sequence, "" when it has none.
func CommonName(seq pkix.RDNSequence) string {
	for _, rdn := range seq {
		for _, atv := range rdn {
			if atv.Type.Equal(oidCommonName) {
				if s, ok := atv.Value.(string); ok {
					return s
				}
			}
		}
	}
	return ""
}

// typeOID maps an attribute type to its OID: a short name (exact case, as
// cert-manager matches it) or a dotted OID; nil otherwise.
func typeOID(t string) asn1.ObjectIdentifier {
	if oid, ok := typeNames[t]; ok {
		return oid
	}
	oid, err := ParseOID(t)
	if err != nil {
		return nil
	}
	return oid
}

// ParseOID reads a dotted object identifier ("1.3.6.1.4.1.311.20.2.3").
// It accepts what DER can encode: at least two arcs, non-negative, the
// first 0, 1 or 2 and, under 0 or 1, a second below 40.
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	if s == "" {
		return nil, errors.New("zero length OBJECT IDENTIFIER")
	}
	parts := strings.Split(s, ".")
	oid := make(asn1.ObjectIdentifier, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p != strconv.Itoa(n) {
			return nil, fmt.Errorf("%q is not a dotted object identifier", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 || oid[0] > 2 || (oid[0] < 2 && oid[1] >= 40) {
		return nil, fmt.Errorf("%q is not a valid object identifier", s)
	}
	return oid, nil
}

// decodeValue reads one attribute value: "#" and the hex of a BER value
// (RFC 4514 section 2.4), or an escaped string.
func decodeValue(s string) (string, error) {
	if len(s) > 0 && s[0] == '#' {
		raw, err := hex.DecodeString(s[1:])
		if err != nil {
			return "", fmt.Errorf("failed to decode BER encoding: %w", err)
		}
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(raw, &v)
		if err != nil {
			return "", fmt.Errorf("failed to decode BER encoding: %w", err)
		}
		if len(rest) != 0 {
			return "", errors.New("failed to decode BER encoding: trailing bytes after value")
		}
		return string(v.Bytes), nil
	}
	return decodeString(s)
}

// decodeString trims the spaces around s (keeping an escaped trailing
// one) and resolves its escapes: a backslash before one of ' "#+,;<=>\'
// or before two hex digits.
func decodeString(str string) (string, error) {
	s := strings.Trim(str, " ")
	if len(s) > 0 && strings.HasSuffix(str, " ") {
		backslashes := 0
		for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
			backslashes++
		}
		if backslashes%2 == 1 {
			s += " "
		}
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			switch c {
			case '"', ';', '<', '>':
				return "", fmt.Errorf("got unescaped character: '%c'", c)
			case 0:
				return "", errors.New("got unescaped NULL character")
			}
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("got corrupted escaped character at the end of a value")
		}
		switch s[i+1] {
		case ' ', '"', '#', '+', ',', ';', '<', '=', '>', '\\':
			b.WriteByte(s[i+1])
			i++
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("failed to decode escaped character: want two hex digits after a backslash")
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", fmt.Errorf("failed to decode escaped character: %w", err)
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), nil
}
