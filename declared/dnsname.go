package declared

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// validDNSName accepts what an ACME CA can validate: a lower-case fully
// qualified name of RFC 1123 labels, optionally with a single leading
// wildcard label. validation.IsDNS1123Subdomain alone is not enough: it
// does not limit the length of each label, and accepts an IP address.
func validDNSName(n string) error {
	if len(n) > maxDNSName {
		return fmt.Errorf("is %d bytes long; a DNS name may be at most %d", len(n), maxDNSName)
	}
	if isIPAddress(n) {
		return errors.New("is an IP address: IP addresses belong in spec.ipAddresses")
	}
	if n != strings.ToLower(n) {
		return errors.New("must be lower case")
	}
	if strings.HasSuffix(n, ".") {
		return errors.New("must not end with a dot: write the name without it")
	}
	host := strings.TrimPrefix(n, "*.")
	if strings.Contains(host, "*") {
		return errors.New("a wildcard may only be the whole leftmost label (*.example.com)")
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return errors.New("not a fully qualified DNS name: it needs at least two labels")
	}
	for i, l := range labels {
		switch {
		case l == "":
			return errors.New("has an empty label (two dots in a row, or a leading dot)")
		case len(l) > maxDNSLabel:
			return fmt.Errorf("label %d is %d bytes long; a DNS label may be at most %d", i+1, len(l), maxDNSLabel)
		}
	}
	if msgs := validation.IsDNS1123Subdomain(host); len(msgs) > 0 {
		return fmt.Errorf("not a valid DNS name: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// isIPAddress reports whether n is an IPv4 or IPv6 address, with or
// without brackets or a zone.
func isIPAddress(n string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(n, "["), "]"))
	return err == nil
}

// looksLikeDNSName reports whether a commonName is meant as a host name
// (and so must be a valid one) rather than free text such as "My Service":
// it is an IP address, or has a dot and only the characters of host names.
// "system:node:web-1" is not a host name; "Example.COM" and "10.0.0.1" are
// meant as one.
func looksLikeDNSName(cn string) bool {
	if isIPAddress(cn) {
		return true
	}
	if !strings.Contains(cn, ".") {
		return false
	}
	for _, r := range cn {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(".-*_", r):
		default:
			return false
		}
	}
	return true
}
