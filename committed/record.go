package committed

import (
	"encoding/csv"
	"sort"
	"strings"
	"time"
)

// Certificate is a certificate as committed: what the plaintext metadata of
// one Secret file says, read without a decryption key.
type Certificate struct {
	Path       string
	Cluster    string
	Namespace  string
	SecretName string

	// Certificate is "namespace/name" of the declaring Certificate.
	Certificate string
	CommonName  string
	DNSNames    []string
	// IPAddresses, URIs and EmailAddresses are the certificate's other
	// SANs, from cert-manager's ip-sans, uri-sans and email-sans.
	IPAddresses    []string
	URIs           []string
	EmailAddresses []string
	IssuerName     string
	IssuerKind     string
	PrivateKey     string // key spec, e.g. "RSA-2048"
	SpecHash       string
	// OutputsHash is the declaration's OutputsHash the Secret was
	// rendered with; "" when it has no extra outputs. Outputs names them
	// (see AnnotationOutputs); nil also for a file rendered before
	// certsync recorded the names.
	OutputsHash string
	Outputs     []string
	// TemplateHash is the declaration's TemplateHash the Secret was
	// rendered with; "" without a secretTemplate.
	TemplateHash string
	// KeystorePasswordsHash identifies the keystore passwords, when they
	// come from a Secret of the repository (AnnotationKeystorePasswordsHash).
	KeystorePasswordsHash string

	NotBefore time.Time
	NotAfter  time.Time
	Serial    string
	IssuedAt  time.Time
	Reason    string

	// RenewalWindowStart/End are the CA's ARI window, zero when it gave none.
	RenewalWindowStart time.Time
	RenewalWindowEnd   time.Time

	// Recipients are the age recipients ("age1…") and PGP fingerprints
	// ("pgp:…") the file is encrypted to, sorted. Cloud KMS keys are not
	// compared and not listed.
	Recipients []string

	// Source is the repository file that declared the certificate.
	Source string

	// Encrypted is true when the file has a sops section. A Secret
	// committed without one holds its private key in the clear.
	Encrypted bool
	// PlaintextData lists, sorted, the values under data and stringData
	// that are not SOPS ciphertexts ("data.tls.key"): a .sops.yaml rule
	// left them unencrypted, or the file has no sops section at all.
	// Empty values are not listed: there is nothing in them to expose.
	PlaintextData []string
}

// Read reads the record of the Secret file at p. It fails when the file is
// not a Secret whose metadata matches its path: a file someone moved or
// edited by hand is reported rather than trusted. A Secret with no sops
// section is read (Encrypted false, PlaintextData naming its keys) so the
// planner can replace it: its key has been exposed.
func Read(p string, content []byte) (Certificate, error) { return Layout{}.Read(p, content) }

// Read is the package's Read for a file of this layout (or of the default
// one: see ParseSecretPath).
func (l Layout) Read(p string, content []byte) (Certificate, error) {
	cluster, ns, name, _, ok := l.ParseSecretPath(p)
	if !ok {
		return Certificate{}, errorf(p, "not a certsync Secret path (want %s/<namespace>/<secretName>.yaml)", strings.ReplaceAll(l.Folder(), ClusterPlaceholder, "<cluster>"))
	}
	f, err := readFile(p, content)
	if err != nil {
		return Certificate{}, err
	}
	if f.Kind != "Secret" {
		return Certificate{}, errorf(p, "kind is %q, want Secret", f.Kind)
	}
	if f.Metadata.Namespace != ns || f.Metadata.Name != name {
		return Certificate{}, errorf(p, "metadata says %s/%s, which does not match the path", f.Metadata.Namespace, f.Metadata.Name)
	}
	c := FromAnnotations(f.Metadata.Annotations)
	c.Path, c.Cluster, c.Namespace, c.SecretName = p, cluster, ns, name
	c.Encrypted = f.SOPS != nil
	c.Recipients = f.recipients()
	c.PlaintextData = f.plaintext
	return c, nil
}

// FromAnnotations reads the fields of a record that the Secret's
// annotations carry (everything but the path, the recipients and the
// encryption state). Read uses it on the plaintext metadata; render.Verify
// uses it on the decrypted Secret, so both are read the same way.
func FromAnnotations(a map[string]string) Certificate {
	return Certificate{
		Certificate: a[AnnotationCertificate],
		CommonName:  a[AnnotationCMCommonName],
		DNSNames:    splitList(a[AnnotationCMAltNames]),
		OutputsHash: a[AnnotationOutputsHash],
		Outputs:     splitList(a[AnnotationOutputs]),

		TemplateHash:          a[AnnotationTemplateHash],
		KeystorePasswordsHash: a[AnnotationKeystorePasswordsHash],

		IPAddresses:    splitList(a[AnnotationCMIPSANs]),
		URIs:           splitList(a[AnnotationCMURISANs]),
		EmailAddresses: splitList(a[AnnotationCMEmailSANs]),
		IssuerName:     a[AnnotationCMIssuerName],
		IssuerKind:     a[AnnotationCMIssuerKind],
		PrivateKey:     a[AnnotationPrivateKey],
		SpecHash:       a[AnnotationSpecHash],
		Serial:         a[AnnotationSerial],
		Reason:         a[AnnotationReason],
		NotBefore:      parseTime(a[AnnotationNotBefore]),
		NotAfter:       parseTime(a[AnnotationNotAfter]),
		IssuedAt:       parseTime(a[AnnotationIssuedAt]),

		RenewalWindowStart: parseTime(a[AnnotationRenewalWindowStart]),
		RenewalWindowEnd:   parseTime(a[AnnotationRenewalWindowEnd]),

		Source: a[AnnotationSource],
	}
}

// Recipients reads the recipients any SOPS-encrypted file of certsync's
// (a Secret or an ACME account key) is encrypted to, without a key. A file
// with no sops section has none: nil, and no error; Exposed tells what it
// holds in the clear.
func Recipients(p string, content []byte) ([]string, error) {
	f, err := readFile(p, content)
	if err != nil {
		return nil, err
	}
	return f.recipients(), nil
}

// Exposed lists, sorted, the values under data and stringData of any
// certsync file (a Secret or an ACME account key) that are not SOPS
// ciphertexts, as "data.<key>": everything when the file has no sops
// section, the keys a .sops.yaml rule left alone otherwise. It never
// returns the values.
func Exposed(p string, content []byte) ([]string, error) {
	f, err := readFile(p, content)
	if err != nil {
		return nil, err
	}
	return f.plaintext, nil
}

// Encrypted reports whether a committed file has a sops section at all;
// one without was written in plaintext and has nothing to decrypt.
func Encrypted(p string, content []byte) (bool, error) {
	f, err := readFile(p, content)
	if err != nil {
		return false, err
	}
	return f.SOPS != nil, nil
}

func (f *file) recipients() []string {
	if f.SOPS == nil {
		return nil
	}
	var out []string
	for _, k := range f.SOPS.Age {
		out = append(out, k.Recipient)
	}
	for _, k := range f.SOPS.PGP {
		out = append(out, "pgp:"+k.FP)
	}
	sort.Strings(out)
	return out
}

// FormatTime is how times are written in annotations: RFC 3339, UTC.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// JoinList and splitList follow cert-manager's comma-separated
// annotations (its JoinWithEscapeCSV): one CSV record, so a value that
// holds a comma or a quote is quoted ("10 Downing Street, London"). Names
// never need quoting: for them it is a plain comma-separated list.
func JoinList(v []string) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	if err := w.Write(v); err != nil {
		return strings.Join(v, ",") // a strings.Builder never fails
	}
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	// Without a quote or a line break a CSV record is its text split at
	// the commas: that is every list of names, read without a csv.Reader
	// (each allocates a 4 KiB buffer, 10,000 records a pass).
	if !strings.ContainsAny(s, "\"\r\n") {
		return strings.Split(s, ",")
	}
	r := csv.NewReader(strings.NewReader(s))
	r.FieldsPerRecord = -1
	if v, err := r.Read(); err == nil {
		return v
	}
	return strings.Split(s, ",") // not CSV: as written by hand
}
