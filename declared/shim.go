package declared

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// cert-manager's ingress-shim and gateway-shim, as certsync reads them.
//
// cert-manager turns an Ingress (networking.k8s.io/v1) or a Gateway API
// Gateway that carries its annotations into Certificates: one per
// spec.tls entry of an Ingress, one per Secret the TLS listeners of a
// Gateway refer to. certsync reads the same documents into the same
// Certificates, from the same annotations, then validates them with the
// rules of a Certificate document (certificateFromRaw): a rule is defined
// once, and a problem points at the annotation or entry it comes from
// ("Ingress shop/web: metadata.annotations[\"cert-manager.io/duration\"]").
//
// Where cert-manager would skip an entry with a warning Event (a TLS entry
// without hosts, a listener without a hostname), certsync reports a
// Problem: it has no Events, and a Certificate silently not read would be
// pruned.

// The annotations cert-manager reads on an Ingress or Gateway
// (cert-manager.io/v1's annotation keys, and acme.cert-manager.io's).
const (
	annIssuer          = "cert-manager.io/issuer"
	annClusterIssuer   = "cert-manager.io/cluster-issuer"
	annIssuerKind      = "cert-manager.io/issuer-kind"
	annIssuerGroup     = "cert-manager.io/issuer-group"
	annTLSACME         = "kubernetes.io/tls-acme"
	annCommonName      = "cert-manager.io/common-name"
	annAltNames        = "cert-manager.io/alt-names"
	annIPSANs          = "cert-manager.io/ip-sans"
	annURISANs         = "cert-manager.io/uri-sans"
	annEmailSANs       = "cert-manager.io/email-sans"
	annDuration        = "cert-manager.io/duration"
	annRenewBefore     = "cert-manager.io/renew-before"
	annRenewBeforePct  = "cert-manager.io/renew-before-percentage"
	annUsages          = "cert-manager.io/usages"
	annRevisionLimit   = "cert-manager.io/revision-history-limit"
	annKeyAlgorithm    = "cert-manager.io/private-key-algorithm"
	annKeyEncoding     = "cert-manager.io/private-key-encoding"
	annKeySize         = "cert-manager.io/private-key-size"
	annKeyRotation     = "cert-manager.io/private-key-rotation-policy"
	annSecretTemplate  = "cert-manager.io/secret-template"
	annIgnoreListeners = "cert-manager.io/ignore-tls-listeners"
)

// subjectAnnotations set spec.subject of the Certificate.
var subjectAnnotations = []string{
	"cert-manager.io/subject-organizations",
	"cert-manager.io/subject-organizationalunits",
	"cert-manager.io/subject-countries",
	"cert-manager.io/subject-provinces",
	"cert-manager.io/subject-localities",
	"cert-manager.io/subject-postalcodes",
	"cert-manager.io/subject-streetaddresses",
	"cert-manager.io/subject-serialnumber",
}

// noEffectAnnotations are read by cert-manager to configure how its own
// HTTP-01 solver routes the challenge (a temporary Ingress, an
// HTTPRoute). certsync answers HTTP-01 on its own listener: they are
// accepted and change nothing.
var noEffectAnnotations = []string{
	"acme.cert-manager.io/http01-edit-in-place",
	"acme.cert-manager.io/http01-ingress-class",
	"acme.cert-manager.io/http01-ingress-ingressclassname",
	"acme.cert-manager.io/http01-parentreffallback",
}

// shimAnnotations are every annotation key the shims read: a key one or
// two edits away from one of them is taken for a typo.
var shimAnnotations = slices.Concat([]string{
	annIssuer, annClusterIssuer, annIssuerKind, annIssuerGroup, annTLSACME,
	annCommonName, annAltNames, annIPSANs, annURISANs, annEmailSANs,
	annDuration, annRenewBefore, annRenewBeforePct, annUsages, annRevisionLimit,
	annKeyAlgorithm, annKeyEncoding, annKeySize, annKeyRotation,
	annSecretTemplate, annIgnoreListeners,
}, subjectAnnotations, noEffectAnnotations)

// applysetLabel is not copied from an Ingress to its Certificates, as in
// cert-manager: it would make kubectl prune them.
const applysetLabel = "applyset.kubernetes.io/part-of"

// Kinds and groups of the shims.
const (
	kindIngress       = "Ingress"
	kindGateway       = "Gateway"
	kindListenerSet   = "ListenerSet"
	kindXListenerSet  = "XListenerSet"
	ingressAPIVersion = "networking.k8s.io/v1"
	gatewayGroup      = "gateway.networking.k8s.io"
	gatewayXGroup     = "gateway.networking.x-k8s.io"
)

// isShimKind reports whether documents of kind k may stand for
// Certificates, so that readHead looks at their annotations.
func isShimKind(k string) bool {
	return k == kindIngress || k == kindGateway || k == kindListenerSet || k == kindXListenerSet
}

// shimGroup reports whether API group g defines the Ingress-like kind k
// cert-manager's shims act on (an Istio Gateway, networking.istio.io, is
// not one).
func shimGroup(g, k string) bool {
	switch k {
	case kindIngress:
		return g == "networking.k8s.io" || g == "extensions"
	case kindGateway, kindListenerSet:
		return g == gatewayGroup
	case kindXListenerSet:
		return g == gatewayXGroup
	}
	return false
}

// shimMarks is what the annotations of an Ingress-like document say to
// classify, before the document is decoded.
type shimMarks struct {
	issuer   bool // cert-manager.io/issuer or cert-manager.io/cluster-issuer is set
	tlsACME  bool // kubernetes.io/tls-acme is true
	typo     bool // a key is a near miss of one of shimAnnotations
	certsync bool // a key is under certsync.io/
}

// trigger reports whether cert-manager's shim acts on a document of kind k
// with these annotations (kubernetes.io/tls-acme only triggers the
// ingress-shim).
func (m shimMarks) trigger(k string) bool {
	return m.issuer || (k == kindIngress && m.tlsACME)
}

// ours reports whether certsync reads the document: cert-manager's shim
// acts on it, or a typo may hide that it should, or certsync's own
// annotations are on it (and must not be ignored silently).
func (m shimMarks) ours(k string) bool {
	return m.trigger(k) || m.typo || m.certsync
}

func marksOf(annotations map[string]string) shimMarks {
	var m shimMarks
	_, issuer := annotations[annIssuer]
	_, cluster := annotations[annClusterIssuer]
	m.issuer = issuer || cluster
	m.tlsACME, _ = strconv.ParseBool(annotations[annTLSACME])
	for k := range annotations {
		if _, near := nearAnnotation(k); near {
			m.typo = true
		}
		if strings.HasPrefix(k, "certsync.io/") {
			m.certsync = true
		}
	}
	return m
}

// nearAnnotation returns the annotation of shimAnnotations that key is a
// typo of; false when key is one of them, or far from all.
func nearAnnotation(key string) (string, bool) {
	if slices.Contains(shimAnnotations, key) {
		return "", false
	}
	for _, want := range shimAnnotations {
		if typoDistance(key, want) <= maxTypo {
			return want, true
		}
	}
	return "", false
}

// readShimMarks reads metadata.annotations straight from the node: an
// Ingress is classified before it is decoded, and one that is not
// cert-manager's is never decoded at all.
func readShimMarks(root *yaml.Node) shimMarks {
	meta := resolveAlias(mappingValue(root, "metadata"))
	if meta == nil {
		return shimMarks{}
	}
	ann := resolveAlias(mappingValue(meta, "annotations"))
	if ann == nil || ann.Kind != yaml.MappingNode {
		return shimMarks{}
	}
	out := map[string]string{}
	var decoded map[string]any
	if ann.Decode(&decoded) == nil {
		// Resolves merge keys and aliases as the full decoding will.
		for k, v := range decoded {
			out[k] = fmt.Sprint(v)
		}
	} else {
		for i := 0; i+1 < len(ann.Content); i += 2 {
			out[scalarValue(ann.Content[i])] = scalarValue(ann.Content[i+1])
		}
	}
	return marksOf(out)
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 8; depth++ {
		n = n.Alias
	}
	return n
}

// place is where a field of a shim Certificate was written on the
// Ingress or Gateway: a dotted path ("spec.tls[0].hosts[1]"), or a key of
// the mapping at that path (an annotation).
type place struct {
	field string
	key   string
}

func annotation(key string) place { return place{field: "metadata.annotations", key: key} }

// shimPlaces maps the Certificate field paths the validators name
// (spec.duration, spec.dnsNames[2], spec.secretTemplate.labels) to their
// places. A path not listed is looked up by its parents
// (spec.privateKey.size, then spec.privateKey, then spec), then falls back
// to the entry the Certificate comes from.
type shimPlaces struct {
	byField  map[string]place
	fallback place
}

// locate finds the place of a Certificate field; false on a nil receiver
// (a Certificate document, whose fields are its own). exact is false when
// the place is a parent's or the fallback: the field is then written
// inside that place's value (a label inside the JSON of
// cert-manager.io/secret-template), so a problem with the field itself
// still points at that value, not at the place's key.
func (s *shimPlaces) locate(field string) (p place, exact, ok bool) {
	if s == nil {
		return place{}, false, false
	}
	exact = true
	for {
		if q, found := s.byField[field]; found {
			return q, exact, true
		}
		exact = false
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			return s.fallback, false, true
		}
		field = field[:i]
	}
}

// with is a copy of s with more places.
func (s *shimPlaces) with(more map[string]place, fallback place) *shimPlaces {
	out := &shimPlaces{byField: maps.Clone(s.byField), fallback: fallback}
	maps.Copy(out.byField, more)
	return out
}

// shimTemplate is what an Ingress-like document's annotations say about
// every Certificate it stands for.
type shimTemplate struct {
	raw    rawCertificate // spec fields from annotations; no names yet
	alt    []string       // cert-manager.io/alt-names, appended to the hosts
	ips    []string       // cert-manager.io/ip-sans
	places *shimPlaces
	labels map[string]string
}

// shimHost is one name of a Certificate and where it was written.
type shimHost struct {
	name string
	at   place
}

// shimCert is one Certificate an Ingress-like document stands for, before
// validation.
type shimCert struct {
	secretName string
	secretAt   place
	hosts      []shimHost
	entry      place // the spec.tls entry or listener it comes from
	hostsAt    place // where its names are listed
}

// parseShim reads the Certificates an Ingress, Gateway or ListenerSet
// stands for. A problem of the document as a whole (its annotations)
// leaves no Certificate, as cert-manager creates none then; a problem of
// one entry (a TLS entry, a listener) leaves the others' Certificates.
func parseShim(d *document, apiVersion, kind string) ([]Certificate, []error) {
	var meta struct {
		Metadata rawMeta `yaml:"metadata"`
	}
	if err := d.decode(&meta); err != nil {
		return nil, []error{err}
	}
	md := meta.Metadata
	d.name, d.namespace = md.Name, namespaceOrDefault(md.Namespace)
	if err := validateObjectName(d, md.Name, md.Namespace); err != nil {
		return nil, []error{err}
	}
	ann := md.Annotations
	for _, k := range sortedKeys(ann) {
		if want, near := nearAnnotation(k); near {
			return nil, []error{d.keyError("metadata.annotations", k, fmt.Sprintf("is not one of cert-manager's annotations: did you mean %s? cert-manager would ignore this %s; until this is fixed nothing is pruned", want, kind))}
		}
	}
	if !marksOf(ann).trigger(kind) {
		for _, k := range sortedKeys(ann) {
			if strings.HasPrefix(k, "certsync.io/") {
				return nil, []error{d.keyError("metadata.annotations", k, fmt.Sprintf(
					"has no effect: this %s has none of cert-manager's annotations (%s, %s), so it stands for no Certificate; add one, or remove this annotation", kind, annClusterIssuer, annIssuer))}
			}
		}
		return nil, nil
	}
	g, version, _ := strings.Cut(apiVersion, "/")
	switch {
	case kind == kindIngress && apiVersion != ingressAPIVersion:
		return nil, []error{&fieldError{node: d.nodeOf("apiVersion", false), field: "apiVersion", msg: fmt.Sprintf(
			"%s Ingress is a removed API (no longer served since Kubernetes 1.22), which cert-manager does not read: use apiVersion: %s (spec.tls is written the same); until this is fixed nothing is pruned", clip(apiVersion), ingressAPIVersion)}}
	case kind == kindGateway && version != "v1" && version != "v1beta1":
		return nil, []error{&fieldError{node: d.nodeOf("apiVersion", false), field: "apiVersion", msg: fmt.Sprintf(
			"%s Gateway is not read by certsync: use apiVersion: %s/v1 (cert-manager's gateway-shim reads v1); until this is fixed nothing is pruned", clip(apiVersion), gatewayGroup)}}
	case kind == kindListenerSet || kind == kindXListenerSet:
		return nil, []error{d.keyError("metadata.annotations", firstPresent(ann, annIssuer, annClusterIssuer), fmt.Sprintf(
			"certsync does not read the Certificates of a %s (%s) yet: declare them as cert-manager.io/v1 Certificates; until this is fixed nothing is pruned", kind, g))}
	}
	tmpl, err := readShimAnnotations(d, kind, md)
	if err != nil {
		return nil, []error{err}
	}
	var certs []shimCert
	var errs []error
	if kind == kindIngress {
		certs, errs = ingressCerts(d)
	} else {
		certs, errs = gatewayCerts(d, ann)
	}
	var out []Certificate
	for _, sc := range certs {
		c, err := tmpl.certificate(d, sc)
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) && strings.HasPrefix(fe.field, "metadata.") {
				// About the annotations: the same for every entry.
				return nil, append(errs, err)
			}
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	return out, errs
}

func firstPresent(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return k
		}
	}
	return keys[0]
}

// readShimAnnotations reads the annotations as cert-manager's
// issuerForIngressLike and translateAnnotations do, into the
// Certificate fields they set; the values are validated later with the
// Certificate's own rules, except those certsync does not act on.
func readShimAnnotations(d *document, kind string, md rawMeta) (*shimTemplate, error) {
	ann := md.Annotations
	t := &shimTemplate{places: &shimPlaces{byField: map[string]place{}}}
	// fail is a problem with an annotation's value; misplaced one with the
	// annotation being there at all.
	fail := func(key, format string, args ...any) error {
		return d.valueError("metadata.annotations", key, fmt.Sprintf(format, args...))
	}
	misplaced := func(key, format string, args ...any) error {
		return d.keyError("metadata.annotations", key, fmt.Sprintf(format, args...))
	}
	at := func(field, key string) { t.places.byField[field] = annotation(key) }

	// The issuer: cert-manager's issuerForIngressLike.
	issuer, hasIssuer := ann[annIssuer]
	cluster, hasCluster := ann[annClusterIssuer]
	issuerKind, hasKind := ann[annIssuerKind]
	group, hasGroup := ann[annIssuerGroup]
	ref := &t.raw.Spec.IssuerRef
	nameKey := annIssuer
	switch {
	case hasIssuer && hasCluster:
		return nil, misplaced(annClusterIssuer, "cannot be combined with %s (cert-manager refuses both): keep one", annIssuer)
	case hasCluster && hasKind:
		return nil, misplaced(annIssuerKind, "cannot be combined with %s (cert-manager refuses both): the kind is ClusterIssuer already", annClusterIssuer)
	case hasCluster && hasGroup:
		return nil, misplaced(annIssuerGroup, "cannot be combined with %s (cert-manager refuses both): an external issuer is named with %s, %s and %s", annClusterIssuer, annIssuer, annIssuerKind, annIssuerGroup)
	case hasIssuer:
		ref.Name, ref.Kind = issuer, KindIssuer
	case hasCluster:
		ref.Name, ref.Kind, nameKey = cluster, KindClusterIssuer, annClusterIssuer
	default:
		// Only kubernetes.io/tls-acme: "true" brings an Ingress here.
		return nil, misplaced(annTLSACME, "asks for cert-manager's default issuer (its --default-issuer-name flag), which certsync has no equivalent of: name the issuer with %s (or %s for an Issuer in the %s's namespace)", annClusterIssuer, annIssuer, kind)
	}
	if strings.TrimSpace(ref.Name) == "" {
		return nil, fail(nameKey, "is empty: write the name of the issuer")
	}
	at("spec.issuerRef", nameKey)
	if hasKind {
		ref.Kind = issuerKind
		at("spec.issuerRef.kind", annIssuerKind)
	}
	if hasGroup {
		ref.Group = group
		at("spec.issuerRef.group", annIssuerGroup)
	}

	// The subject and the usages, read as cert-manager's shim reads them;
	// the Certificate's rules (and its issuer's limits) then apply.
	if err := t.readSubject(ann, fail, at); err != nil {
		return nil, err
	}
	if _, ok := ann[annURISANs]; ok {
		return nil, misplaced(annURISANs, "cert-manager's shim does not read this annotation (cert-manager only writes it on Secrets), so cert-manager would issue without these URI SANs: remove it, or declare a Certificate with spec.uris")
	}
	if v, ok := ann[annUsages]; ok {
		usages, err := splitUsages(v)
		if err != nil {
			return nil, fail(annUsages, "%v", err)
		}
		t.raw.Spec.Usages = usages
		at("spec.usages", annUsages)
	}
	if v, ok := ann[annRevisionLimit]; ok {
		// certsync keeps no CertificateRequests: the limit changes nothing,
		// but a value cert-manager refuses is refused.
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil, fail(annRevisionLimit, "%q is not a whole number", clip(v))
		}
		if n < 1 {
			return nil, fail(annRevisionLimit, "%d must be a positive number", n)
		}
		limit := int(n)
		t.raw.Spec.RevisionHistoryLimit = &limit
		at("spec.revisionHistoryLimit", annRevisionLimit)
	}

	// The names.
	if v, ok := ann[annCommonName]; ok {
		t.raw.Spec.CommonName = v
		at("spec.commonName", annCommonName)
	}
	if v := ann[annAltNames]; v != "" {
		// Split without trimming, as cert-manager does: "a, b" is " b".
		t.alt = strings.Split(v, ",")
	}
	if v := ann[annIPSANs]; v != "" {
		for _, ip := range strings.Split(v, ",") {
			ip = strings.TrimSpace(ip)
			if net.ParseIP(ip) == nil {
				return nil, fail(annIPSANs, "%q is not a valid IP address", clip(ip))
			}
			t.ips = append(t.ips, ip)
		}
		at("spec.ipAddresses", annIPSANs)
	}
	if v := ann[annEmailSANs]; v != "" {
		for _, e := range strings.Split(v, ",") {
			t.raw.Spec.EmailAddresses = append(t.raw.Spec.EmailAddresses, strings.TrimSpace(e))
		}
		at("spec.emailAddresses", annEmailSANs)
	}

	// Lifetime and key.
	if v, ok := ann[annDuration]; ok {
		if v == "" {
			return nil, fail(annDuration, "is empty: write a duration such as 2160h")
		}
		t.raw.Spec.Duration = v
		at("spec.duration", annDuration)
	}
	if v, ok := ann[annRenewBefore]; ok {
		if v == "" {
			return nil, fail(annRenewBefore, "is empty: write a duration such as 720h")
		}
		t.raw.Spec.RenewBefore = v
		at("spec.renewBefore", annRenewBefore)
	}
	if v, ok := ann[annRenewBeforePct]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil, fail(annRenewBeforePct, "%q is not a whole number", clip(v))
		}
		pct := int(n)
		t.raw.Spec.RenewBeforePercentage = &pct
		at("spec.renewBeforePercentage", annRenewBeforePct)
	}
	key := &rawKeySpec{}
	keySet := false
	for _, fk := range [][2]string{{"algorithm", annKeyAlgorithm}, {"size", annKeySize}, {"encoding", annKeyEncoding}, {"rotationPolicy", annKeyRotation}} {
		field, k := fk[0], fk[1]
		v, ok := ann[k]
		if !ok {
			continue
		}
		keySet = true
		at("spec.privateKey."+field, k)
		switch field {
		case "algorithm":
			key.Algorithm = v
			if v == "" {
				return nil, fail(k, "is empty: write RSA, ECDSA or Ed25519")
			}
		case "encoding":
			key.Encoding = v
			if v == "" {
				return nil, fail(k, "is empty: write PKCS1 or PKCS8")
			}
		case "rotationPolicy":
			key.RotationPolicy = v
			if v == "" {
				return nil, fail(k, "is empty: write Always or Never")
			}
		case "size":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fail(k, "%q is not a whole number", clip(v))
			}
			if n == 0 && key.Algorithm != Ed25519 {
				// Not "the default", as an omitted spec.privateKey.size is.
				return nil, fail(k, "0 is not a valid key size")
			}
			key.Size = n
		}
	}
	if keySet {
		t.raw.Spec.PrivateKey = key
		if _, ok := ann[annKeyAlgorithm]; ok {
			at("spec.privateKey", annKeyAlgorithm)
		}
	}

	if v, ok := ann[annSecretTemplate]; ok {
		st, err := decodeSecretTemplate(v)
		if err != nil {
			return nil, fail(annSecretTemplate, "%v", err)
		}
		t.raw.Spec.SecretTemplate = st
		at("spec.secretTemplate", annSecretTemplate)
	}

	// The Certificate's metadata: the Ingress's labels and annotations
	// (read for certsync's own, AnnotationClusters and
	// AnnotationClusterSelector).
	if md.Labels != nil {
		t.labels = maps.Clone(md.Labels)
		delete(t.labels, applysetLabel)
	}
	t.raw.Metadata.Annotations = ann
	return t, nil
}

// decodeSecretTemplate reads cert-manager.io/secret-template as
// cert-manager does: JSON, with no unknown field.
func decodeSecretTemplate(v string) (*rawSecretTemplate, error) {
	var st rawSecretTemplate
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("is not a secretTemplate in JSON ({\"labels\": {...}, \"annotations\": {...}}): %v", err)
	}
	if len(st.Labels) == 0 && len(st.Annotations) == 0 {
		return nil, nil
	}
	return &st, nil
}

// splitUsages reads cert-manager.io/usages as cert-manager does (names
// separated by commas, spaces around them ignored).
func splitUsages(v string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(v, ",") {
		u = strings.Trim(u, " ")
		if !knownUsage(u) {
			return nil, fmt.Errorf("%q is not a key usage cert-manager knows", clip(u))
		}
		out = append(out, u)
	}
	return out, nil
}

// readSubject reads the cert-manager.io/subject-* annotations into
// spec.subject: comma-separated values, with CSV quoting for a value
// that holds a comma ("10 Downing Street, Westminster",London), as
// cert-manager's shim splits them; subject-serialnumber is one value.
func (t *shimTemplate) readSubject(ann map[string]string, fail func(key, format string, args ...any) error, at func(field, key string)) error {
	for _, k := range subjectAnnotations {
		v, ok := ann[k]
		if !ok {
			continue
		}
		if t.raw.Spec.Subject == nil {
			t.raw.Spec.Subject = &rawSubject{}
		}
		at("spec.subject", k)
		sub := t.raw.Spec.Subject
		if k == "cert-manager.io/subject-serialnumber" {
			sub.SerialNumber = v
			continue
		}
		r := csv.NewReader(strings.NewReader(v))
		values, err := r.Read()
		if err == nil {
			_, err = r.Read()
			if err == io.EOF {
				err = nil
			} else if err == nil {
				err = errors.New("more than one line")
			}
		}
		if err != nil {
			return fail(k, "is not a comma-separated list (quote a value that holds a comma): %v", err)
		}
		switch k {
		case "cert-manager.io/subject-organizations":
			sub.Organizations = values
		case "cert-manager.io/subject-organizationalunits":
			sub.OrganizationalUnits = values
		case "cert-manager.io/subject-countries":
			sub.Countries = values
		case "cert-manager.io/subject-provinces":
			sub.Provinces = values
		case "cert-manager.io/subject-localities":
			sub.Localities = values
		case "cert-manager.io/subject-postalcodes":
			sub.PostalCodes = values
		case "cert-manager.io/subject-streetaddresses":
			sub.StreetAddresses = values
		}
	}
	return nil
}

// certificate builds and validates the Certificate of one entry.
func (t *shimTemplate) certificate(d *document, sc shimCert) (Certificate, error) {
	raw := t.raw
	raw.Metadata.Name = sc.secretName
	raw.Metadata.Namespace = d.namespace
	raw.Metadata.Labels = maps.Clone(t.labels)
	raw.Spec.SecretName = sc.secretName
	more := map[string]place{
		"spec":            sc.hostsAt,
		"spec.dnsNames":   sc.hostsAt,
		"spec.secretName": sc.secretAt,
	}
	// Hosts that are IP addresses go to spec.ipAddresses, as in
	// cert-manager's splitHosts; repeated hosts are listed once.
	var dns []string
	var ips []string
	firstIP := place{}
	for _, h := range dedupHosts(sc.hosts) {
		if net.ParseIP(h.name) != nil {
			if len(ips) == 0 {
				firstIP = h.at
			}
			ips = append(ips, h.name)
			continue
		}
		more[fmt.Sprintf("spec.dnsNames[%d]", len(dns))] = h.at
		dns = append(dns, h.name)
	}
	for _, a := range t.alt {
		more[fmt.Sprintf("spec.dnsNames[%d]", len(dns))] = annotation(annAltNames)
		dns = append(dns, a)
	}
	if len(ips) > 0 {
		more["spec.ipAddresses"] = firstIP
	}
	raw.Spec.DNSNames = dns
	raw.Spec.IPAddresses = slices.Concat(ips, t.ips)
	cd := *d
	cd.shim = t.places.with(more, sc.entry)
	return certificateFromRaw(&cd, &raw)
}

func dedupHosts(hosts []shimHost) []shimHost {
	seen := map[string]bool{}
	var out []shimHost
	for _, h := range hosts {
		if !seen[h.name] {
			seen[h.name] = true
			out = append(out, h)
		}
	}
	return out
}

// ingressCerts lists the Certificates of an Ingress's spec.tls, one per
// entry, named after its secretName, as cert-manager's ingress-shim does.
func ingressCerts(d *document) ([]shimCert, []error) {
	var ing rawIngress
	if err := d.decode(&ing); err != nil {
		return nil, []error{err}
	}
	// Two entries with one secretName would be two Certificates of one
	// name: cert-manager refuses the whole Ingress.
	first := map[string]int{}
	for j, tls := range ing.Spec.TLS {
		if tls.SecretName == "" {
			continue
		}
		if i, dup := first[tls.SecretName]; dup {
			return nil, []error{d.errorAt(place{field: fmt.Sprintf("spec.tls[%d].secretName", j)}, false, fmt.Sprintf(
				"%q is also the secretName of spec.tls[%d]: a secret name must only appear in a single TLS entry (cert-manager makes one Certificate per entry, and refuses this Ingress); list all the hosts in one entry", clip(tls.SecretName), i))}
		}
		first[tls.SecretName] = j
	}
	var out []shimCert
	var errs []error
	for j, tls := range ing.Spec.TLS {
		entry := fmt.Sprintf("spec.tls[%d]", j)
		switch {
		case tls.SecretName == "":
			errs = append(errs, d.errorAt(place{field: entry}, false, "secretName is required: cert-manager skips a TLS entry without one (nothing is issued for it); name the Secret, or move the entry to an Ingress without cert-manager's annotations"))
			continue
		case len(tls.Hosts) == 0:
			errs = append(errs, d.errorAt(place{field: entry}, false, "hosts is required: cert-manager skips a TLS entry without hosts (nothing is issued for it); list the hosts of the certificate"))
			continue
		}
		sc := shimCert{
			secretName: tls.SecretName,
			secretAt:   place{field: entry + ".secretName"},
			entry:      place{field: entry},
			hostsAt:    place{field: entry + ".hosts"},
		}
		for k, h := range tls.Hosts {
			sc.hosts = append(sc.hosts, shimHost{name: h, at: place{field: fmt.Sprintf("%s.hosts[%d]", entry, k)}})
		}
		out = append(out, sc)
	}
	return out, errs
}
