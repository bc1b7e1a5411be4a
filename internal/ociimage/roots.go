package ociimage

import (
	"bytes"
	"encoding/pem"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// FallbackRoots returns the DER certificates of the trusted roots that
// golang.org/x/crypto/x509roots/fallback carries: Mozilla's NSS store, at
// the version go.mod pins. Taking them from a module rather than from the
// build machine's /etc/ssl keeps the image the same wherever it is built,
// and updating them is a reviewed go.mod change (govulncheck reports
// stale versions).
//
// Roots that NSS trusts only with a constraint (today: distrust of
// certificates issued after a date) are left out: a PEM bundle cannot
// express the constraint, so including them would trust more than
// Mozilla does.
func FallbackRoots() [][]byte {
	var roots [][]byte
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		roots = append(roots, bytes.Clone(r.Certificate))
	}
	return roots
}

// PEMBundle encodes DER certificates as one PEM file, in the order given,
// the format of /etc/ssl/certs/ca-certificates.crt.
func PEMBundle(roots [][]byte) []byte {
	var b bytes.Buffer
	for _, der := range roots {
		// Writing to a bytes.Buffer cannot fail.
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return b.Bytes()
}
