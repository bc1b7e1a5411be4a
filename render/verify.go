package render

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/pki"
)

// ErrMismatch is wrapped by Verify when a committed Secret's plaintext
// metadata, which the planner trusts without a key, does not describe the
// certificate and key inside it.
var ErrMismatch = errors.New("committed metadata does not match the certificate")

// Verify checks a decrypted Secret against the record read from the same
// file's plaintext metadata (committed.Read).
//
// SOPS's MAC covers the metadata, and encrypt.Decrypt checks it; but the
// planner reads the metadata with its own fast scanner, never through
// SOPS, and the values were written by whoever made the file. So this
// checks both links: that the record matches the annotations SOPS
// decrypted (a difference means the scanner read a different copy than
// the MAC covers, e.g. a duplicated key), and that the annotations match
// tls.crt (serial, validity, names, key type) and tls.key (it parses and
// belongs to the certificate).
//
// Every disagreement is listed, with both values; key material never is.
func Verify(s *corev1.Secret, rec committed.Certificate) error {
	var bad []string
	differ := func(field, recorded, actual string) {
		if recorded != actual {
			bad = append(bad, fmt.Sprintf("%s: metadata says %q, the certificate has %q", field, recorded, actual))
		}
	}
	if s.Namespace != rec.Namespace || s.Name != rec.SecretName {
		bad = append(bad, fmt.Sprintf("Secret: the path says %s/%s, the SOPS-covered copy %s/%s", rec.Namespace, rec.SecretName, s.Namespace, s.Name))
	}
	// The plaintext copy the planner read against the MAC-covered one.
	inFile := committed.FromAnnotations(s.Annotations)
	for _, f := range []struct{ name, recorded, covered string }{
		{committed.AnnotationCertificate, rec.Certificate, inFile.Certificate},
		{committed.AnnotationSource, rec.Source, inFile.Source},
		{committed.AnnotationSerial, rec.Serial, inFile.Serial},
		{committed.AnnotationNotBefore, committed.FormatTime(rec.NotBefore), committed.FormatTime(inFile.NotBefore)},
		{committed.AnnotationNotAfter, committed.FormatTime(rec.NotAfter), committed.FormatTime(inFile.NotAfter)},
		{committed.AnnotationPrivateKey, rec.PrivateKey, inFile.PrivateKey},
		{committed.AnnotationSpecHash, rec.SpecHash, inFile.SpecHash},
		{committed.AnnotationIssuedAt, committed.FormatTime(rec.IssuedAt), committed.FormatTime(inFile.IssuedAt)},
		{committed.AnnotationReason, rec.Reason, inFile.Reason},
		{committed.AnnotationRenewalWindowStart, committed.FormatTime(rec.RenewalWindowStart), committed.FormatTime(inFile.RenewalWindowStart)},
		{committed.AnnotationRenewalWindowEnd, committed.FormatTime(rec.RenewalWindowEnd), committed.FormatTime(inFile.RenewalWindowEnd)},
		{committed.AnnotationCMCommonName, rec.CommonName, inFile.CommonName},
		{committed.AnnotationCMAltNames, committed.JoinList(rec.DNSNames), committed.JoinList(inFile.DNSNames)},
		{committed.AnnotationCMIPSANs, committed.JoinList(rec.IPAddresses), committed.JoinList(inFile.IPAddresses)},
		{committed.AnnotationCMURISANs, committed.JoinList(rec.URIs), committed.JoinList(inFile.URIs)},
		{committed.AnnotationCMEmailSANs, committed.JoinList(rec.EmailAddresses), committed.JoinList(inFile.EmailAddresses)},
		{committed.AnnotationOutputsHash, rec.OutputsHash, inFile.OutputsHash},
		{committed.AnnotationOutputs, committed.JoinList(rec.Outputs), committed.JoinList(inFile.Outputs)},
		{committed.AnnotationTemplateHash, rec.TemplateHash, inFile.TemplateHash},
		{committed.AnnotationKeystorePasswordsHash, rec.KeystorePasswordsHash, inFile.KeystorePasswordsHash},
		{committed.AnnotationCMIssuerName, rec.IssuerName, inFile.IssuerName},
		{committed.AnnotationCMIssuerKind, rec.IssuerKind, inFile.IssuerKind},
	} {
		if f.recorded != f.covered {
			bad = append(bad, fmt.Sprintf("%s: plaintext metadata says %q, the SOPS-covered copy %q", f.name, f.recorded, f.covered))
		}
	}

	// The metadata against the certificate and key themselves.
	chain, err := pki.ParseChain(s.Data[corev1.TLSCertKey])
	if err != nil {
		bad = append(bad, fmt.Sprintf("tls.crt: %v", err))
		return mismatch(rec, bad)
	}
	leaf := chain[0]
	differ("serial", rec.Serial, pki.Serial(leaf))
	differ("not-before", committed.FormatTime(rec.NotBefore), formatSecond(leaf.NotBefore))
	differ("not-after", committed.FormatTime(rec.NotAfter), formatSecond(leaf.NotAfter))
	differ("private-key", rec.PrivateKey, pki.KeySpecOf(leaf.PublicKey))
	if !sameSet(rec.DNSNames, leaf.DNSNames) {
		bad = append(bad, fmt.Sprintf("dnsNames: metadata says %q, the certificate has %q", committed.JoinList(rec.DNSNames), committed.JoinList(leaf.DNSNames)))
	}
	for _, f := range []struct {
		name          string
		recorded, has []string
	}{
		{"ipAddresses", normalIPs(rec.IPAddresses), ipStrings(leaf)},
		{"uris", rec.URIs, uriStrings(leaf)},
		{"emailAddresses", rec.EmailAddresses, leaf.EmailAddresses},
	} {
		if !sameSet(f.recorded, f.has) {
			bad = append(bad, fmt.Sprintf("%s: metadata says %q, the certificate has %q", f.name, committed.JoinList(f.recorded), committed.JoinList(f.has)))
		}
	}
	bad = append(bad, checkOutputs(s.Data)...)
	key, err := pki.ParseKey(s.Data[corev1.TLSPrivateKeyKey])
	switch {
	case err != nil:
		bad = append(bad, fmt.Sprintf("tls.key: %v", err)) // ParseKey never quotes its input
	case !pki.KeyMatches(leaf, key):
		bad = append(bad, "tls.key: does not belong to the certificate in tls.crt")
	}
	return mismatch(rec, bad)
}

// checkOutputs checks the additional output formats the Secret holds
// against tls.key and tls.crt; keystores are password-protected and left
// alone. It never quotes their content.
func checkOutputs(data map[string][]byte) []string {
	var bad []string
	if v, ok := data[KeyCombinedPEM]; ok && !bytes.Equal(v, bytes.Join([][]byte{data[corev1.TLSPrivateKeyKey], data[corev1.TLSCertKey]}, []byte("\n"))) {
		bad = append(bad, KeyCombinedPEM+": is not tls.key followed by tls.crt")
	}
	if v, ok := data[KeyDER]; ok {
		block, _ := pem.Decode(data[corev1.TLSPrivateKeyKey])
		if block == nil || !bytes.Equal(v, block.Bytes) {
			bad = append(bad, KeyDER+": is not the key of tls.key")
		}
	}
	return bad
}

// normalIPs writes IP addresses as net.IP.String does.
func normalIPs(ips []string) []string {
	out := make([]string, 0, len(ips))
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil {
			s = ip.String()
		}
		out = append(out, s)
	}
	return out
}

func mismatch(rec committed.Certificate, bad []string) error {
	if len(bad) == 0 {
		return nil
	}
	what := rec.Path
	if what == "" {
		what = "Secret " + rec.Namespace + "/" + rec.SecretName
	}
	return fmt.Errorf("verify %s: %w: %s", what, ErrMismatch, strings.Join(bad, "; "))
}

// formatSecond writes a certificate time as annotations do: UTC, seconds.
func formatSecond(t time.Time) string { return committed.FormatTime(t.Truncate(time.Second)) }

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}
