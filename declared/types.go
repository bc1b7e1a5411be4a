package declared

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"time"
)

// Defaults applied when a Certificate leaves a field empty; they are
// cert-manager's, so a manifest means the same thing under both tools.
const (
	DefaultDuration = 90 * 24 * time.Hour
	DefaultRSASize  = 2048
	DefaultECSize   = 256
)

// Key algorithms as spelled in spec.privateKey.algorithm.
const (
	RSA     = "RSA"
	ECDSA   = "ECDSA"
	Ed25519 = "Ed25519"
)

// Rotation policies as spelled in spec.privateKey.rotationPolicy.
const (
	RotateAlways = "Always"
	RotateNever  = "Never"
)

// Issuer kinds as spelled in spec.issuerRef.kind.
const (
	KindIssuer        = "Issuer"
	KindClusterIssuer = "ClusterIssuer"
)

// Source is where a declaration was read (the line and column its document
// starts on), or where a Problem in it was found (the node the message is
// about). Line and Column are 1-based and Column counts bytes from the
// start of the line, as Go's compilers and go/token count them, so
// editors and `::error` annotations land on the character meant. Column
// is 0 when only the line is known (yaml.v3's syntax errors name no
// column), and Line is 0 when the whole file is meant.
type Source struct {
	File   string
	Line   int
	Column int
}

// String is file:line:col, file:line when the column is unknown, or file.
func (s Source) String() string {
	switch {
	case s.Line > 0 && s.Column > 0:
		return s.File + ":" + itoa(s.Line) + ":" + itoa(s.Column)
	case s.Line > 0:
		return s.File + ":" + itoa(s.Line)
	}
	return s.File
}

// before orders sources by file, then line, then column, as numbers
// ("a.yaml:9" before "a.yaml:10").
func (s Source) before(t Source) bool {
	if s.File != t.File {
		return s.File < t.File
	}
	if s.Line != t.Line {
		return s.Line < t.Line
	}
	return s.Column < t.Column
}

// Certificate is a cert-manager.io/v1 Certificate after defaulting and
// validation: what the repository asks for. It is also what an Ingress or
// Gateway with cert-manager's annotations stands for (cert-manager's
// ingress-shim and gateway-shim): Name is then the Secret's name,
// Namespace the Ingress's, Labels the Ingress's, Source the Ingress
// document.
type Certificate struct {
	Namespace string
	Name      string
	Source    Source
	// Labels are the Certificate's own metadata labels; renewal requests and
	// selectors (certsync renew -l) match them.
	Labels map[string]string
	// Delivery is which clusters receive the certificate, from certsync's
	// annotations on the Certificate; empty when it has none (certsync.yaml
	// decides, see package settings).
	Delivery Delivery

	SecretName string
	// SecretTemplate labels and annotations are copied onto the Secret.
	SecretTemplate SecretTemplate

	CommonName string
	DNSNames   []string

	// Duration is the requested lifetime. Default: DefaultDuration.
	Duration time.Duration
	// RenewBefore is how long before expiry to renew; zero means "use
	// RenewBeforePercentage, or one third of the lifetime".
	RenewBefore time.Duration
	// RenewBeforePercentage is spec.renewBeforePercentage (0 when unset).
	RenewBeforePercentage int

	PrivateKey KeySpec
	IssuerRef  IssuerRef

	// IsCA is spec.isCA: the certificate may sign others (basic
	// constraints CA:TRUE, key usage cert sign). Only a selfSigned or ca
	// issuer issues one; ACME CAs do not.
	IsCA bool

	// The other subject alternative names: spec.ipAddresses,
	// spec.uris, spec.emailAddresses and spec.otherNames, as written and
	// validated. An ACME issuer takes IP addresses only (crosscheck.go).
	IPAddresses    []string
	URIs           []string
	EmailAddresses []string
	OtherNames     []OtherName

	// Subject is spec.subject (every attribute but the commonName).
	// LiteralSubject is spec.literalSubject, an RFC 4514 string used as
	// the subject as written; it excludes CommonName and Subject.
	Subject        Subject
	LiteralSubject string

	// Usages is spec.usages as written; empty means cert-manager's
	// default, digital signature and key encipherment (see KeyUsages).
	Usages []string
	// UsagesNotInRequest is spec.encodeUsagesInRequest: false: the
	// certificate request leaves the key usages out, for issuers that
	// refuse requests carrying them. The issuer is still told the usages
	// (issuer.Request).
	UsagesNotInRequest bool

	// NameConstraints is spec.nameConstraints; only a CA certificate
	// (IsCA) may have them.
	NameConstraints *NameConstraints

	// AdditionalOutputFormats are the types of
	// spec.additionalOutputFormats (OutputCombinedPEM, OutputDER) and
	// Keystores is spec.keystores: extra keys of the Secret, rendered from
	// the issued certificate and key. They change the Secret, not the
	// certificate: see OutputsHash.
	AdditionalOutputFormats []string
	Keystores               Keystores

	// RevisionHistoryLimit is spec.revisionHistoryLimit (0 when unset),
	// validated as cert-manager does (at least 1) and otherwise without
	// effect: it bounds how many CertificateRequests cert-manager keeps,
	// and certsync keeps none (the Git history is the record).
	RevisionHistoryLimit int
}

// Key returns "namespace/name", the identity used in logs, commits and plans.
func (c *Certificate) Key() string { return c.Namespace + "/" + c.Name }

// Annotations certsync reads on a Certificate (or on an Ingress or
// Gateway that stands for one). They are certsync's settings, kept out of
// cert-manager's schema so the manifest stays valid for cert-manager.
const (
	// AnnotationClusters lists the clusters that receive the certificate,
	// comma-separated, or "all" for every cluster certsync.yaml declares.
	AnnotationClusters = "certsync.io/clusters"
	// AnnotationClusterSelector picks the receiving clusters by their
	// labels in certsync.yaml, in Kubernetes label-selector syntax
	// ("env=prod,region in (eu,us)").
	AnnotationClusterSelector = "certsync.io/cluster-selector"
)

// Delivery is what a Certificate's annotations say about the clusters that
// receive it. At most one of Clusters and Selector is set.
type Delivery struct {
	Clusters []string // names as written; "all" stands alone
	Selector string   // label selector as written
	// Line and Column are where the annotation's value was written, for
	// messages about it (see Source).
	Line, Column int
}

// IsZero reports whether the Certificate names no clusters itself.
func (d Delivery) IsZero() bool { return len(d.Clusters) == 0 && d.Selector == "" }

// SecretTemplate is spec.secretTemplate.
type SecretTemplate struct {
	Labels      map[string]string
	Annotations map[string]string
}

// KeySpec is spec.privateKey after defaulting: Algorithm is one of RSA,
// ECDSA, Ed25519; Size is the RSA modulus or the ECDSA curve size (0 for
// Ed25519); Encoding is PKCS1 (default) or PKCS8; RotationPolicy is Always
// (default, as in cert-manager 1.18+) or Never.
type KeySpec struct {
	Algorithm      string
	Size           int
	Encoding       string
	RotationPolicy string
}

// String is the compact form recorded in the committed Secret, e.g. "RSA-2048".
func (k KeySpec) String() string {
	if k.Algorithm == Ed25519 {
		return Ed25519
	}
	return k.Algorithm + "-" + itoa(k.Size)
}

// IssuerRef is spec.issuerRef after defaulting (Kind Issuer, Group
// cert-manager.io).
type IssuerRef struct {
	Name  string
	Kind  string
	Group string
}

// Issuer is a cert-manager.io/v1 Issuer or ClusterIssuer. Exactly one of the
// issuer types is set: ACME, CA or SelfSigned (cert-manager's vault and
// venafi are refused).
type Issuer struct {
	Kind      string // KindIssuer or KindClusterIssuer
	Namespace string // empty for a ClusterIssuer
	Name      string
	Source    Source

	ACME *ACMEIssuer
	// CA and SelfSigned are omitted from JSON when unset, so the digest of
	// an ACME issuer (see reconcile's fingerprints) is what it was before
	// they existed.
	CA         *CAIssuer         `json:",omitempty"`
	SelfSigned *SelfSignedIssuer `json:",omitempty"`
}

// CAIssuer is spec.ca: certificates are signed with the key pair of Secret
// SecretName in the issuer's SecretNamespace (tls.crt, tls.key, and
// ca.crt when present), as cert-manager's CA issuer signs them. certsync
// finds that Secret among its own committed Secrets (a Certificate with
// that secretName, typically an isCA one from a selfSigned issuer) or as
// a SOPS-encrypted Secret declared in the repository. The URL lists are
// written into every certificate issued.
type CAIssuer struct {
	SecretName             string
	CRLDistributionPoints  []string `json:",omitempty"`
	OCSPServers            []string `json:",omitempty"`
	IssuingCertificateURLs []string `json:",omitempty"`
}

// SelfSignedIssuer is spec.selfSigned: each certificate is signed with its
// own private key. CRLDistributionPoints are written into every
// certificate issued.
type SelfSignedIssuer struct {
	CRLDistributionPoints []string `json:",omitempty"`
}

// Ref is the IssuerRef a Certificate uses to point at this issuer.
func (i *Issuer) Ref() IssuerRef {
	return IssuerRef{Name: i.Name, Kind: i.Kind, Group: "cert-manager.io"}
}

// DefaultClusterResourceNamespace is where the Secrets a ClusterIssuer
// refers to live: cert-manager's --cluster-resource-namespace default.
const DefaultClusterResourceNamespace = "cert-manager"

// SecretNamespace is the namespace of the Secrets the issuer's *SecretRef
// fields name: an Issuer's own namespace, or for a ClusterIssuer the
// cluster resource namespace, as cert-manager resolves them.
func (i *Issuer) SecretNamespace() string {
	if i.Kind == KindClusterIssuer {
		return DefaultClusterResourceNamespace
	}
	return i.Namespace
}

// Key returns "Kind/name" or "Kind/namespace/name".
func (i *Issuer) Key() string {
	if i.Namespace == "" {
		return i.Kind + "/" + i.Name
	}
	return i.Kind + "/" + i.Namespace + "/" + i.Name
}

// ACMEIssuer is spec.acme.
type ACMEIssuer struct {
	Server string
	Email  string
	// PrivateKeySecretRef names the Secret holding the account key; certsync
	// keeps it in the repository, SOPS-encrypted (see committed.AccountPath).
	PrivateKeySecretRef string
	// SkipTLSVerify and CABundle configure trust in the ACME server.
	SkipTLSVerify bool
	CABundle      []byte
	// DisableAccountKeyGeneration refuses to create an account key when none
	// is committed, as cert-manager does.
	DisableAccountKeyGeneration bool
	// EnableDurationFeature sends the Certificate's duration to the CA.
	EnableDurationFeature bool
	// Profile is spec.acme.profile (ACME profiles draft), passed through.
	Profile string
	// PreferredChain is spec.acme.preferredChain.
	PreferredChain string
	// ExternalAccountBinding is spec.acme.externalAccountBinding.
	ExternalAccountBinding *ExternalAccountBinding

	Solvers []Solver
}

// SecretKeySelector is cert-manager's SecretKeySelector: one key of a
// Secret in the issuer's SecretNamespace. The manifest names the Secret;
// its value never appears in the manifest.
type SecretKeySelector struct {
	Name string
	Key  string
}

// ExternalAccountBinding is spec.acme.externalAccountBinding: KeySecretRef
// holds the base64url HMAC key. KeyAlgorithm is cert-manager's deprecated
// field, accepted and kept; the binding is signed with HS256 as
// cert-manager does.
type ExternalAccountBinding struct {
	KeyID        string
	KeySecretRef SecretKeySelector
	KeyAlgorithm string
}

// Solver is one entry of spec.acme.solvers.
type Solver struct {
	Selector *SolverSelector
	HTTP01   *HTTP01Solver
	DNS01    *DNS01Solver
}

// SolverSelector is spec.acme.solvers[].selector.
type SolverSelector struct {
	DNSNames    []string
	DNSZones    []string
	MatchLabels map[string]string
}

// HTTP01Solver is spec.acme.solvers[].http01. certsync answers HTTP-01
// challenges from its own listener, so the ingress/gatewayHTTPRoute details
// cert-manager would use to route traffic are accepted and ignored.
type HTTP01Solver struct{}

// DNS-01 provider blocks of spec.acme.solvers[].dns01, as cert-manager
// spells them.
const (
	DNS01Cloudflare   = "cloudflare"
	DNS01Route53      = "route53"
	DNS01DigitalOcean = "digitalocean"
	DNS01RFC2136      = "rfc2136"
	DNS01AzureDNS     = "azureDNS"
	DNS01CloudDNS     = "cloudDNS"
	DNS01AcmeDNS      = "acmeDNS"
	DNS01Akamai       = "akamai"
	DNS01Webhook      = "webhook"
)

// DNS01Solver is spec.acme.solvers[].dns01. Provider is the cert-manager
// block name (DNS01Cloudflare, ..., DNS01Webhook). SolverName is
// webhook.solverName, a lego DNS provider name, for DNS01Webhook. Settings
// are the block's non-secret fields by cert-manager field name ("email",
// "nameserver", ...), as written; Secrets are its *SecretRef fields by
// field name ("apiTokenSecretRef", ...).
//
// Nothing here configures the agent's process: a webhook provider takes
// its settings from the operator's environment, never from the manifest.
type DNS01Solver struct {
	Provider   string
	SolverName string
	Settings   map[string]string
	Secrets    map[string]SecretKeySelector
}

// SpecHash is a short digest of every field that shapes the issued
// certificate (names of every kind, subject, key, issuer, duration, isCA,
// usages, name constraints). A committed Secret records it, so a later
// pass sees a changed spec without decrypting anything. The Secret's
// extra outputs are not in it (see OutputsHash).
func (c *Certificate) SpecHash() string {
	names := append([]string(nil), c.DNSNames...)
	sort.Strings(names)
	h := sha256.New()
	for _, part := range []string{
		"cn=" + c.CommonName,
		"dns=" + strings.Join(names, ","),
		"key=" + c.PrivateKey.String(),
		"issuer=" + c.IssuerRef.Kind + "/" + c.IssuerRef.Name,
		"duration=" + c.Duration.String(),
	} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	// Written only when set, so the hash of every other certificate stays
	// what it was before the field existed (no re-issue on upgrade).
	if c.IsCA {
		h.Write([]byte("isCA=true\x00"))
	}
	for _, part := range c.requestParts() {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
