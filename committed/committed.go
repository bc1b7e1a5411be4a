// Package committed describes what certsync keeps in Git and reads it back
// without decrypting anything.
//
// # Repository layout
//
// Declarations (cert-manager Certificates, Issuers, ClusterIssuers) may live
// anywhere in the repository except under the folders certsync writes:
//
//	secrets/<cluster>/<namespace>/<secretName>.yaml   one TLS Secret per cluster it is applied to
//	accounts/clusterissuers/<privateKeySecretRef>.yaml the ACME account key of a ClusterIssuer
//	accounts/namespaces/<namespace>/<privateKeySecretRef>.yaml  ... of a namespaced Issuer
//	requests/renew/<namespace>/<name>.yaml             a manual renewal request (certsync renew)
//
// The cluster folder lets one certificate be applied to several clusters,
// each file encrypted only to that cluster's recipients through path_regex
// creation rules in .sops.yaml; a single-cluster setup uses "default".
//
// # Plaintext metadata
//
// Every Secret file is SOPS-encrypted with metadata left in plaintext (the
// Flux convention, encrypted_regex ^(data|stringData)$). The annotations
// below record what was issued, so a pass decides what is due from Git alone:
// no decryption key is needed to plan, to show status, or to review a PR.
// SOPS's MAC covers these values, so an edit is detected on decryption.
//
// # Data in the clear
//
// Reading a file also tells whether its secrets are really encrypted: a
// file with no sops section, or one a .sops.yaml rule encrypted without
// touching data (encrypted_regex ^nothing$), has its private key in Git for
// anyone who can read the repository. Read and Exposed name such values
// (never quote them) so the planner can replace the key.
package committed

import (
	"fmt"
	"path"
	"strings"
)

// Top-level folders certsync writes; declarations are never read from them.
const (
	SecretsDir  = "secrets/"
	AccountsDir = "accounts/"
)

// DefaultCluster is the cluster name of a single-cluster setup.
const DefaultCluster = "default"

// OutputDirs are the folders that hold certsync's output, not declarations.
func OutputDirs() []string { return []string{SecretsDir, AccountsDir, "requests/", ClaimsDir} }

// SecretPath is where the Secret of a Certificate is kept for one cluster.
func SecretPath(cluster, namespace, secretName string) string {
	return SecretsDir + cluster + "/" + namespace + "/" + secretName + ".yaml"
}

// ClusterPrefix is the folder holding every Secret of one cluster.
func ClusterPrefix(cluster string) string { return SecretsDir + cluster + "/" }

// AccountPath is where the ACME account key named by an issuer's
// privateKeySecretRef is kept. namespace is empty for a ClusterIssuer.
func AccountPath(namespace, secretName string) string {
	if namespace == "" {
		return AccountsDir + "clusterissuers/" + secretName + ".yaml"
	}
	return AccountsDir + "namespaces/" + namespace + "/" + secretName + ".yaml"
}

// ParseSecretPath splits a path made by SecretPath. ok is false for any
// other path, including ones that try to leave the folder.
func ParseSecretPath(p string) (cluster, namespace, secretName string, ok bool) {
	if !strings.HasPrefix(p, SecretsDir) || path.Ext(p) != ".yaml" || path.Clean(p) != p {
		return "", "", "", false
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(p, SecretsDir), ".yaml"), "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	for _, s := range parts {
		if s == "" || s == "." || s == ".." {
			return "", "", "", false
		}
	}
	return parts[0], parts[1], parts[2], true
}

// Labels and annotations certsync puts on every Secret it writes.
const (
	// ManagedByLabel marks a Secret as certsync's: it only ever prunes
	// Secrets that carry it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "certsync"

	prefix = "certsync.io/"
	// Certificate is "namespace/name" of the declaring Certificate.
	AnnotationCertificate = prefix + "certificate"
	// Source is the repository file that declared it.
	AnnotationSource    = prefix + "source"
	AnnotationNotBefore = prefix + "not-before"
	AnnotationNotAfter  = prefix + "not-after"
	AnnotationSerial    = prefix + "serial"
	// PrivateKey is the key spec, e.g. "RSA-2048", "ECDSA-256", "Ed25519".
	AnnotationPrivateKey = prefix + "private-key"
	// SpecHash covers every declared field that shapes the certificate.
	AnnotationSpecHash = prefix + "spec-hash"
	AnnotationIssuedAt = prefix + "issued-at"
	// Reason is why the certificate was last issued.
	AnnotationReason = prefix + "reason"
	// RenewalWindowStart/End record the CA's ARI suggestion, when it made one.
	AnnotationRenewalWindowStart = prefix + "renewal-window-start"
	AnnotationRenewalWindowEnd   = prefix + "renewal-window-end"
	// OutputsHash records declared.Certificate.OutputsHash: which extra
	// keys (additional output formats, keystores) the Secret was rendered
	// with. Written only when there are some.
	AnnotationOutputsHash = prefix + "outputs-hash"
	// Outputs names, comma-separated and sorted, the additional output
	// formats (CombinedPEM, DER) and keystores (jks, pkcs12) the Secret
	// was rendered with, so a plan can say what was added or removed
	// (the hash alone cannot). Written only when there are some.
	AnnotationOutputs = prefix + "outputs"
	// TemplateHash records declared.Certificate.TemplateHash: the
	// spec.secretTemplate labels and annotations the Secret was rendered
	// with. Written only when the template has some.
	AnnotationTemplateHash = prefix + "template-hash"
	// KeystorePasswordsHash identifies the keystore passwords the
	// keystores were rendered with, when they come from a Secret of the
	// repository: a digest of that Secret's SOPS ciphertext for the key
	// (already public in Git; never of the password itself), so a new
	// password is seen without decrypting anything. Written only then.
	AnnotationKeystorePasswordsHash = prefix + "keystore-passwords-hash"

	// cert-manager's own Secret annotations, written exactly as it does.
	AnnotationCMCertificateName = "cert-manager.io/certificate-name"
	AnnotationCMCommonName      = "cert-manager.io/common-name"
	AnnotationCMAltNames        = "cert-manager.io/alt-names"
	AnnotationCMIPSANs          = "cert-manager.io/ip-sans"
	AnnotationCMURISANs         = "cert-manager.io/uri-sans"
	AnnotationCMEmailSANs       = "cert-manager.io/email-sans"
	AnnotationCMIssuerName      = "cert-manager.io/issuer-name"
	AnnotationCMIssuerKind      = "cert-manager.io/issuer-kind"
	AnnotationCMIssuerGroup     = "cert-manager.io/issuer-group"

	// The subject annotations cert-manager writes when the certificate's
	// subject has the attribute.
	AnnotationCMSubjectOrganizations       = "cert-manager.io/subject-organizations"
	AnnotationCMSubjectOrganizationalUnits = "cert-manager.io/subject-organizationalunits"
	AnnotationCMSubjectCountries           = "cert-manager.io/subject-countries"
	AnnotationCMSubjectProvinces           = "cert-manager.io/subject-provinces"
	AnnotationCMSubjectLocalities          = "cert-manager.io/subject-localities"
	AnnotationCMSubjectPostalCodes         = "cert-manager.io/subject-postalcodes"
	AnnotationCMSubjectStreetAddresses     = "cert-manager.io/subject-streetaddresses"
	AnnotationCMSubjectSerialNumber        = "cert-manager.io/subject-serialnumber"
)

// Errorf is a helper for errors that name the committed file.
func errorf(p string, format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{p}, args...)...)
}
