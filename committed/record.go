package committed

import (
	"bytes"
	"sort"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
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
	IssuerName  string
	IssuerKind  string
	PrivateKey  string // key spec, e.g. "RSA-2048"
	SpecHash    string

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
}

// file is the plaintext part of a SOPS-encrypted Secret.
type file struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	SOPS *sopsMeta `yaml:"sops"`
}

type sopsMeta struct {
	Age []struct {
		Recipient string `yaml:"recipient"`
	} `yaml:"age"`
	PGP []struct {
		FP string `yaml:"fp"`
	} `yaml:"pgp"`
}

// Read reads the record of the Secret file at p. It fails when the file is
// not a SOPS-encrypted Secret whose metadata matches its path: a file
// someone moved or edited by hand is reported rather than trusted.
func Read(p string, content []byte) (Certificate, error) {
	cluster, ns, name, ok := ParseSecretPath(p)
	if !ok {
		return Certificate{}, errorf(p, "not a certsync Secret path (want %s<cluster>/<namespace>/<secretName>.yaml)", SecretsDir)
	}
	f, ok := scan(content)
	if !ok {
		f = file{}
		if err := yaml.Unmarshal(withoutData(content), &f); err != nil {
			return Certificate{}, errorf(p, "malformed YAML: %v", err)
		}
	}
	if f.Kind != "Secret" {
		return Certificate{}, errorf(p, "kind is %q, want Secret", f.Kind)
	}
	if f.SOPS == nil {
		return Certificate{}, errorf(p, "not SOPS-encrypted: certsync never writes a Secret in plaintext; delete the file and let certsync issue it again")
	}
	if f.Metadata.Namespace != ns || f.Metadata.Name != name {
		return Certificate{}, errorf(p, "metadata says %s/%s, which does not match the path", f.Metadata.Namespace, f.Metadata.Name)
	}
	a := f.Metadata.Annotations
	c := Certificate{
		Path: p, Cluster: cluster, Namespace: ns, SecretName: name,
		Certificate: a[AnnotationCertificate],
		CommonName:  a[AnnotationCMCommonName],
		DNSNames:    splitList(a[AnnotationCMAltNames]),
		IssuerName:  a[AnnotationCMIssuerName],
		IssuerKind:  a[AnnotationCMIssuerKind],
		PrivateKey:  a[AnnotationPrivateKey],
		SpecHash:    a[AnnotationSpecHash],
		Serial:      a[AnnotationSerial],
		Reason:      a[AnnotationReason],
		NotBefore:   parseTime(a[AnnotationNotBefore]),
		NotAfter:    parseTime(a[AnnotationNotAfter]),
		IssuedAt:    parseTime(a[AnnotationIssuedAt]),

		RenewalWindowStart: parseTime(a[AnnotationRenewalWindowStart]),
		RenewalWindowEnd:   parseTime(a[AnnotationRenewalWindowEnd]),

		Recipients: f.recipients(),
		Source:     a[AnnotationSource],
	}
	return c, nil
}

func (f *file) recipients() []string {
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

// JoinList and splitList follow cert-manager's comma-separated annotations.
func JoinList(v []string) string { return strings.Join(v, ",") }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// withoutData drops the top-level data block (the ciphertext, most of the
// file) before parsing: planning reads thousands of these files and needs
// only the metadata and the sops section. Files not in block style are
// returned whole.
func withoutData(content []byte) []byte {
	start := bytes.Index(content, []byte("\ndata:\n"))
	if start < 0 {
		return content
	}
	end := start + len("\ndata:\n")
	for end < len(content) && (content[end] == ' ' || content[end] == '-') {
		nl := bytes.IndexByte(content[end:], '\n')
		if nl < 0 {
			end = len(content)
			break
		}
		end += nl + 1
	}
	out := make([]byte, 0, len(content)-(end-start)+1)
	out = append(out, content[:start+1]...)
	return append(out, content[end:]...)
}

// Recipients reads the recipients any SOPS-encrypted file of certsync's
// (a Secret or an ACME account key) is encrypted to, without a key.
func Recipients(p string, content []byte) ([]string, error) {
	f, ok := scan(content)
	if !ok {
		f = file{}
		if err := yaml.Unmarshal(withoutData(content), &f); err != nil {
			return nil, errorf(p, "malformed YAML: %v", err)
		}
	}
	if f.SOPS == nil {
		return nil, errorf(p, "not SOPS-encrypted")
	}
	return f.recipients(), nil
}
