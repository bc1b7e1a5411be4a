package declared

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// cert-manager's validation limits.
const (
	minDuration    = time.Hour
	minRenewBefore = 5 * time.Minute
	maxCommonName  = 64
)

// parseCertificate reads a cert-manager.io/v1 Certificate document.
func parseCertificate(d *document) (Certificate, error) {
	var raw rawCertificate
	if err := d.decode(&raw); err != nil {
		return Certificate{}, err
	}
	d.name, d.namespace = raw.Metadata.Name, namespaceOrDefault(raw.Metadata.Namespace)
	if err := d.checkKnown(&raw); err != nil {
		return Certificate{}, err
	}
	if err := validateObjectName(d, raw.Metadata.Name, raw.Metadata.Namespace); err != nil {
		return Certificate{}, err
	}
	return certificateFromRaw(d, &raw)
}

// certificateFromRaw applies cert-manager's defaults and certsync's rules
// to a Certificate as written, metadata.name and metadata.namespace already
// checked. It is the one place those rules are defined: a Certificate
// document comes here, and so does the Certificate an Ingress or a Gateway
// stands for (see shim.go), whose document then locates each spec field at
// the annotation or entry it was built from.
func certificateFromRaw(d *document, raw *rawCertificate) (Certificate, error) {
	sp := raw.Spec
	c := Certificate{
		Namespace:  namespaceOrDefault(raw.Metadata.Namespace),
		Name:       raw.Metadata.Name,
		Source:     d.src,
		Labels:     raw.Metadata.Labels,
		SecretName: sp.SecretName,
		CommonName: sp.CommonName,
		DNSNames:   sp.DNSNames,
		Duration:   DefaultDuration,
		IssuerRef:  IssuerRef{Name: sp.IssuerRef.Name, Kind: sp.IssuerRef.Kind, Group: sp.IssuerRef.Group},
		IsCA:       sp.IsCA,
	}
	delivery, err := parseDelivery(d, raw.Metadata.Annotations)
	if err != nil {
		return c, err
	}
	c.Delivery = delivery
	if sp.SecretTemplate != nil {
		c.SecretTemplate = SecretTemplate{Labels: sp.SecretTemplate.Labels, Annotations: sp.SecretTemplate.Annotations}
	}

	if c.SecretName == "" {
		return c, d.fail("spec.secretName", "is required")
	}
	if msgs := validation.IsDNS1123Subdomain(c.SecretName); len(msgs) > 0 {
		return c, d.fail("spec.secretName", "%q is not a valid Secret name: %s", clip(c.SecretName), strings.Join(msgs, "; "))
	}
	if err := validateSecretTemplate(d, c.SecretTemplate); err != nil {
		return c, err
	}
	if err := parseSubject(d, &c, sp.Subject, sp.LiteralSubject); err != nil {
		return c, err
	}
	if err := parseSANs(d, &c, sp.IPAddresses, sp.URIs, sp.EmailAddresses, sp.OtherNames); err != nil {
		return c, err
	}
	if err := validateNames(d, &c); err != nil {
		return c, err
	}
	if err := parseLifetime(d, &c, sp.Duration, sp.RenewBefore, sp.RenewBeforePercentage); err != nil {
		return c, err
	}
	key, err := parseKeySpec(d, sp.PrivateKey)
	if err != nil {
		return c, err
	}
	c.PrivateKey = key
	if err := parseUsages(d, &c, sp.Usages, sp.EncodeUsagesInRequest); err != nil {
		return c, err
	}
	if err := parseNameConstraints(d, &c, sp.NameConstraints); err != nil {
		return c, err
	}
	formats := make([]string, 0, len(sp.AdditionalOutputFormats))
	for _, f := range sp.AdditionalOutputFormats {
		formats = append(formats, f.Type)
	}
	if err := parseOutputs(d, &c, formats, sp.Keystores); err != nil {
		return c, err
	}
	if err := parseRevisionHistoryLimit(d, &c, sp.RevisionHistoryLimit); err != nil {
		return c, err
	}
	return c, validateIssuerRef(d, &c.IssuerRef)
}

// validateNames checks the commonName and the DNS names, once the other
// SANs and the subject are read: cert-manager wants one name of any kind.
func validateNames(d *document, c *Certificate) error {
	cn := c.CommonName
	if c.LiteralSubject != "" {
		cn = literalCommonName(c.LiteralSubject)
	}
	if cn == "" && len(c.DNSNames)+len(c.URIs)+len(c.EmailAddresses)+len(c.IPAddresses)+len(c.OtherNames) == 0 {
		return d.fail("spec", "at least one of commonName (from the commonName field or from a literalSubject), dnsNames, emailSANs, ipAddresses, otherNames, or uriSANs must be set")
	}
	if len(c.CommonName) > maxCommonName {
		return d.fail("spec.commonName", "is %d bytes long; a commonName may be at most %d (put long names in dnsNames only)", len(c.CommonName), maxCommonName)
	}
	// An IP address as commonName is fine when it is also an IP SAN (TLS
	// clients read the SANs); otherwise validDNSName says where it belongs.
	if looksLikeDNSName(c.CommonName) && !slices.Contains(c.IPAddresses, c.CommonName) {
		if err := validDNSName(c.CommonName); err != nil {
			return d.fail("spec.commonName", "%q: %v", clip(c.CommonName), err)
		}
	}
	// Counted before any name is validated: the bound comes first.
	if len(c.DNSNames) > MaxNames {
		return d.failKey("spec", "dnsNames", "has %d names; a certificate may have at most %d (Let's Encrypt's limit): split it into several Certificates", len(c.DNSNames), MaxNames)
	}
	seen := make(map[string]bool, len(c.DNSNames))
	for i, n := range c.DNSNames {
		field := fmt.Sprintf("spec.dnsNames[%d]", i)
		if err := validDNSName(n); err != nil {
			return d.fail(field, "%q: %v", clip(n), err)
		}
		if seen[n] {
			return d.fail(field, "%q is listed twice", clip(n))
		}
		seen[n] = true
	}
	return nil
}

func parseLifetime(d *document, c *Certificate, duration, renewBefore string, pct *int) error {
	if duration != "" {
		v, err := time.ParseDuration(duration)
		if err != nil {
			return d.fail("spec.duration", "%q is not a duration (examples: 2160h, 720h30m): %v", duration, err)
		}
		if v < minDuration {
			return d.fail("spec.duration", "%s is shorter than the minimum %s", v, minDuration)
		}
		c.Duration = v
	}
	if renewBefore != "" && pct != nil {
		return d.failField("spec.renewBefore", "renewBefore and renewBeforePercentage are mutually exclusive")
	}
	if renewBefore != "" {
		v, err := time.ParseDuration(renewBefore)
		if err != nil {
			return d.fail("spec.renewBefore", "%q is not a duration: %v", renewBefore, err)
		}
		if v < minRenewBefore {
			return d.fail("spec.renewBefore", "%s is shorter than the minimum %s", v, minRenewBefore)
		}
		if v >= c.Duration {
			return d.fail("spec.renewBefore", "%s must be shorter than the duration %s", v, c.Duration)
		}
		c.RenewBefore = v
	}
	if pct != nil {
		if *pct <= 0 || *pct >= 100 {
			return d.fail("spec.renewBeforePercentage", "%d must be between 1 and 99", *pct)
		}
		c.RenewBeforePercentage = *pct
	}
	return nil
}

type rawKeySpec = struct {
	Algorithm      string `yaml:"algorithm"`
	Size           int    `yaml:"size"`
	Encoding       string `yaml:"encoding"`
	RotationPolicy string `yaml:"rotationPolicy"`
}

func parseKeySpec(d *document, raw *rawKeySpec) (KeySpec, error) {
	k := KeySpec{Algorithm: RSA, Encoding: "PKCS1", RotationPolicy: RotateAlways}
	if raw == nil {
		k.Size = DefaultRSASize
		return k, nil
	}
	if raw.Algorithm != "" {
		k.Algorithm = raw.Algorithm
	}
	k.Size = raw.Size
	switch k.Algorithm {
	case RSA:
		if k.Size == 0 {
			k.Size = DefaultRSASize
		}
		if k.Size < 2048 || k.Size > 8192 {
			return k, d.fail("spec.privateKey.size", "RSA key size %d must be between 2048 and 8192", k.Size)
		}
	case ECDSA:
		if k.Size == 0 {
			k.Size = DefaultECSize
		}
		if k.Size != 256 && k.Size != 384 && k.Size != 521 {
			return k, d.fail("spec.privateKey.size", "ECDSA key size %d must be 256, 384 or 521", k.Size)
		}
	case Ed25519:
		k.Size = 0
	default:
		return k, d.fail("spec.privateKey.algorithm", "%q is not one of RSA, ECDSA, Ed25519", k.Algorithm)
	}
	switch raw.Encoding {
	case "", "PKCS1":
	case "PKCS8":
		k.Encoding = "PKCS8"
	default:
		return k, d.fail("spec.privateKey.encoding", "%q is not one of PKCS1, PKCS8", raw.Encoding)
	}
	switch raw.RotationPolicy {
	case "", RotateAlways:
	case RotateNever:
		k.RotationPolicy = RotateNever
	default:
		return k, d.fail("spec.privateKey.rotationPolicy", "%q is not one of Always, Never", raw.RotationPolicy)
	}
	return k, nil
}

func validateIssuerRef(d *document, r *IssuerRef) error {
	if r.Name == "" {
		return d.fail("spec.issuerRef.name", "is required")
	}
	if r.Kind == "" {
		r.Kind = KindIssuer
	}
	if r.Group == "" {
		r.Group = "cert-manager.io"
	}
	// The group first: an external issuer's kind (AWSPCAClusterIssuer)
	// is not a typo of ClusterIssuer.
	if r.Group != "cert-manager.io" {
		return d.fail("spec.issuerRef.group", "external issuers (%s %s) are not supported by certsync: it issues from cert-manager.io Issuers and ClusterIssuers only", r.Group, r.Kind)
	}
	if r.Kind != KindIssuer && r.Kind != KindClusterIssuer {
		return d.fail("spec.issuerRef.kind", "%q is not one of Issuer, ClusterIssuer", r.Kind)
	}
	return nil
}

func namespaceOrDefault(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func validateObjectName(d *document, name, namespace string) error {
	if name == "" {
		return d.fail("metadata.name", "is required")
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return d.fail("metadata.name", "%q: %s", clip(name), strings.Join(msgs, "; "))
	}
	if namespace != "" {
		if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
			return d.fail("metadata.namespace", "%q: %s", clip(namespace), strings.Join(msgs, "; "))
		}
	}
	return nil
}

// parseDelivery reads certsync's annotations. An unknown certsync.io/
// annotation is refused: a misspelt "certsync.io/cluster" silently ignored
// would deliver the key to clusters nobody chose.
func parseDelivery(d *document, annotations map[string]string) (Delivery, error) {
	var out Delivery
	for _, key := range sortedKeys(annotations) {
		if !strings.HasPrefix(key, "certsync.io/") {
			continue
		}
		value := strings.TrimSpace(annotations[key])
		switch key {
		case AnnotationClusters:
			out.Line, out.Column = d.text.pos(d.literalNode("metadata.annotations", key, false))
			for _, name := range strings.Split(value, ",") {
				name = strings.TrimSpace(name)
				if name == "" {
					return out, d.failValue("metadata.annotations", key, "lists an empty cluster name (write names separated by commas, or \"all\")")
				}
				if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 && name != "all" {
					return out, d.failValue("metadata.annotations", key, "%q is not a valid cluster name: %s", clip(name), strings.Join(msgs, "; "))
				}
				out.Clusters = append(out.Clusters, name)
			}
			if len(out.Clusters) > 1 && slices.Contains(out.Clusters, "all") {
				return out, d.failValue("metadata.annotations", key, "\"all\" cannot be combined with cluster names")
			}
		case AnnotationClusterSelector:
			out.Line, out.Column = d.text.pos(d.literalNode("metadata.annotations", key, false))
			if value == "" {
				return out, d.failValue("metadata.annotations", key, "is empty; write a label selector such as env=prod")
			}
			out.Selector = value
		default:
			return out, d.failKey("metadata.annotations", key, "is not a certsync annotation (known: %s, %s)", AnnotationClusters, AnnotationClusterSelector)
		}
	}
	if len(out.Clusters) > 0 && out.Selector != "" {
		return out, d.failKey("metadata.annotations", AnnotationClusterSelector, "cannot be combined with %s: name the clusters or select them, not both", AnnotationClusters)
	}
	return out, nil
}
