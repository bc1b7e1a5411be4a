// Package render turns an issued certificate into the Kubernetes Secret
// cert-manager would have written, and reads such Secrets back.
//
// The Secret is byte-for-byte cert-manager's shape: type kubernetes.io/tls,
// tls.crt (leaf then chain), tls.key, ca.crt when the issuer knows the root,
// the additional output formats (tls-combined.pem, key.der) and keystores
// (keystore.p12, keystore.jks and their truststores) the Certificate asks
// for (outputs.go), the cert-manager.io/* annotations, the labels of
// spec.secretTemplate, plus certsync's own plaintext annotations (package
// committed) that let later passes plan without decrypting.
package render

import (
	"crypto/x509"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// TLS is everything a TLS Secret is made from.
type TLS struct {
	Certificate *declared.Certificate
	Issued      *issuer.Certificate
	// KeyPEM is the encoded private key (pki.MarshalKey).
	KeyPEM   []byte
	IssuedAt time.Time
	// Reason is why this certificate was issued; it is recorded.
	Reason string
	// Window is the CA's renewal window, nil when it gave none.
	Window *issuer.RenewalWindow
	// Passwords are the keystore passwords, when the Certificate asks
	// for keystores (spec.keystores). KeystorePasswordsHash identifies
	// where they were read (see committed.AnnotationKeystorePasswordsHash);
	// "" records nothing.
	Passwords             Passwords
	KeystorePasswordsHash string
}

// TLSSecret renders the Secret for one issued certificate, with the
// additional output formats and keystores its Certificate asks for (see
// outputs). Its errors never quote key material or passwords.
func TLSSecret(in TLS) (*corev1.Secret, error) {
	c, leaf := in.Certificate, in.Issued.Leaf
	labels := map[string]string{}
	maps.Copy(labels, c.SecretTemplate.Labels)
	labels["controller.cert-manager.io/fao"] = "true"
	labels[committed.ManagedByLabel] = committed.ManagedByValue

	ann := map[string]string{}
	maps.Copy(ann, c.SecretTemplate.Annotations)
	maps.Copy(ann, map[string]string{
		committed.AnnotationCMCertificateName: c.Name,
		committed.AnnotationCMCommonName:      leaf.Subject.CommonName,
		committed.AnnotationCMAltNames:        committed.JoinList(leaf.DNSNames),
		committed.AnnotationCMIPSANs:          committed.JoinList(ipStrings(leaf)),
		committed.AnnotationCMURISANs:         committed.JoinList(uriStrings(leaf)),
		committed.AnnotationCMIssuerName:      c.IssuerRef.Name,
		committed.AnnotationCMIssuerKind:      c.IssuerRef.Kind,
		committed.AnnotationCMIssuerGroup:     c.IssuerRef.Group,

		committed.AnnotationCertificate: c.Key(),
		committed.AnnotationSource:      c.Source.File,
		committed.AnnotationNotBefore:   committed.FormatTime(leaf.NotBefore),
		committed.AnnotationNotAfter:    committed.FormatTime(leaf.NotAfter),
		committed.AnnotationSerial:      pki.Serial(leaf),
		committed.AnnotationPrivateKey:  pki.KeySpecOf(leaf.PublicKey),
		committed.AnnotationSpecHash:    c.SpecHash(),
		committed.AnnotationIssuedAt:    committed.FormatTime(in.IssuedAt),
		committed.AnnotationReason:      in.Reason,
	})
	// cert-manager's annotations written only when the certificate has
	// the value (AnnotationsForCertificate).
	for k, v := range map[string][]string{
		committed.AnnotationCMEmailSANs:                  leaf.EmailAddresses,
		committed.AnnotationCMSubjectOrganizations:       leaf.Subject.Organization,
		committed.AnnotationCMSubjectOrganizationalUnits: leaf.Subject.OrganizationalUnit,
		committed.AnnotationCMSubjectCountries:           leaf.Subject.Country,
		committed.AnnotationCMSubjectProvinces:           leaf.Subject.Province,
		committed.AnnotationCMSubjectLocalities:          leaf.Subject.Locality,
		committed.AnnotationCMSubjectPostalCodes:         leaf.Subject.PostalCode,
		committed.AnnotationCMSubjectStreetAddresses:     leaf.Subject.StreetAddress,
	} {
		if len(v) > 0 {
			ann[k] = committed.JoinList(v)
		}
	}
	if leaf.Subject.SerialNumber != "" {
		ann[committed.AnnotationCMSubjectSerialNumber] = leaf.Subject.SerialNumber
	}
	// Written only when set, so a Secret without them records nothing
	// and the plan can tell a change from an upgrade (see committed).
	if h := c.OutputsHash(); h != "" {
		ann[committed.AnnotationOutputsHash] = h
	}
	if names := Outputs(c); len(names) > 0 {
		ann[committed.AnnotationOutputs] = committed.JoinList(names)
	}
	if h := c.TemplateHash(); h != "" {
		ann[committed.AnnotationTemplateHash] = h
	}
	if in.KeystorePasswordsHash != "" {
		ann[committed.AnnotationKeystorePasswordsHash] = in.KeystorePasswordsHash
	}
	if in.Window != nil {
		ann[committed.AnnotationRenewalWindowStart] = committed.FormatTime(in.Window.Start)
		ann[committed.AnnotationRenewalWindowEnd] = committed.FormatTime(in.Window.End)
	}
	data := map[string][]byte{
		corev1.TLSCertKey:       in.Issued.ChainPEM,
		corev1.TLSPrivateKeyKey: in.KeyPEM,
	}
	if len(in.Issued.CAPEM) > 0 {
		data["ca.crt"] = in.Issued.CAPEM
	}
	if err := outputs(c, data, in.Passwords, in.IssuedAt); err != nil {
		return nil, fmt.Errorf("render Secret %s/%s: %w", c.Namespace, c.SecretName, err)
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: c.SecretName, Namespace: c.Namespace,
			Labels: labels, Annotations: ann,
		},
		Type: corev1.SecretTypeTLS,
		Data: data,
	}, nil
}

// ipStrings and uriStrings are the certificate's IP and URI SANs as
// cert-manager writes them in its annotations.
func ipStrings(leaf *x509.Certificate) []string {
	out := make([]string, 0, len(leaf.IPAddresses))
	for _, ip := range leaf.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

func uriStrings(leaf *x509.Certificate) []string {
	out := make([]string, 0, len(leaf.URIs))
	for _, u := range leaf.URIs {
		out = append(out, u.String())
	}
	return out
}

// AccountSecret renders an ACME account key as cert-manager stores it: an
// Opaque Secret with the key under tls.key. namespace is where cert-manager
// would keep it (its cluster resource namespace for a ClusterIssuer).
func AccountSecret(namespace, name, issuerKey string, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Labels:      map[string]string{committed.ManagedByLabel: committed.ManagedByValue},
			Annotations: map[string]string{"certsync.io/acme-account-of": issuerKey},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{corev1.TLSPrivateKeyKey: keyPEM},
	}
}

// manifest is the subset of a Secret certsync writes; marshalling
// corev1.Secret itself would add "creationTimestamp: null".
type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Type corev1.SecretType `json:"type"`
	Data map[string][]byte `json:"data"`
}

// Marshal writes a Secret as YAML with keys in a stable order.
func Marshal(s *corev1.Secret) ([]byte, error) {
	var m manifest
	m.APIVersion, m.Kind = "v1", "Secret"
	m.Metadata.Name, m.Metadata.Namespace = s.Name, s.Namespace
	m.Metadata.Labels, m.Metadata.Annotations = s.Labels, s.Annotations
	m.Type, m.Data = s.Type, s.Data
	out, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("render Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return out, nil
}

// Parse reads a decrypted Secret manifest.
func Parse(data []byte) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		// Never quote the input: it holds a private key.
		return nil, fmt.Errorf("parse Secret: malformed manifest")
	}
	if s.Kind != "Secret" {
		return nil, fmt.Errorf("parse Secret: kind is %q", s.Kind)
	}
	return &s, nil
}
