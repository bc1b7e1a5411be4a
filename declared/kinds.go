package declared

import (
	"fmt"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// What parseFile does with a document, decided from its apiVersion and kind
// alone, before anything else of it is read.
//
// A document certsync skips is, to the planner, a Certificate that is not
// declared: its committed file is pruned and its live Secret deleted. So a
// document that looks meant for cert-manager but that certsync cannot read
// is never skipped: it is a Problem, and while any Problem stands nothing
// is pruned. "Looks meant for cert-manager" is:
//
//   - any kind under the cert-manager.io group other than Certificate,
//     Issuer and ClusterIssuer (a typo such as kind: Certficate, or a kind
//     certsync does not read);
//   - any document whose group is a near miss of cert-manager.io
//     (cert-manger.io, certmanager.io, Cert-Manager.io, cert-manager);
//   - a kind Certificate, Issuer or ClusterIssuer, or a near miss of one,
//     with no apiVersion, the core group (v1), or any other group except
//     those of projects known to define kinds of those names
//     (otherProjectsGroup).
//
// An Ingress or a Gateway API Gateway (and ListenerSet) is read when its
// annotations are for cert-manager's ingress-shim or gateway-shim
// (cert-manager.io/issuer, cert-manager.io/cluster-issuer, and for an
// Ingress kubernetes.io/tls-acme: "true"), or when one of its annotation
// keys is a near miss of one of cert-manager's (cert-manager.io/cluster-isuer):
// it stands for Certificates (see shim.go). Without those it is someone
// else's document.
//
// Everything else is someone else's document and is skipped silently:
// Deployments, Kustomizations, Ingresses without cert-manager's
// annotations, and cert-manager's kinds that certsync never needs to read: CertificateRequest under cert-manager.io, Order and
// Challenge under acme.cert-manager.io, trust-manager's Bundle and external
// issuers under their own groups. Skipping those cannot prune anything:
// certsync only ever writes Secrets for the Certificates it reads, and a
// committed CertificateRequest is not one (cert-manager creates them; one
// in Git is signed by cert-manager or by nobody, with or without certsync).
type verdict int

const (
	skip       verdict = iota // someone else's document
	read                      // a cert-manager.io/v1 Certificate, Issuer or ClusterIssuer
	readSecret                // a core v1 Secret
	readList                  // a core v1 List: its items are checked, never read
	refuse                    // meant for cert-manager, but unreadable: a Problem
	readShim                  // an Ingress, Gateway or ListenerSet with cert-manager's annotations (shim.go)
)

// Names certsync reads.
const (
	group      = "cert-manager.io"
	kindCert   = "Certificate"
	whatIsRead = "certsync reads " + APIVersion + " Certificate, Issuer and ClusterIssuer; until this is fixed nothing is pruned"
	// maxTypo is how far (in edits) a group or kind may be from one
	// certsync reads and still be taken for a typo of it.
	maxTypo = 2
)

// headField is the value of apiVersion or kind and the nodes of its key
// and value, for problems about the field and about its value.
type headField struct {
	value    string
	key, val *yaml.Node
}

// head is what classify needs of a document. Duplicate keys keep every
// value: whichever one a tool picks, certsync must not skip the document
// if any of them is cert-manager's.
type head struct {
	apiVersions []headField
	kinds       []headField
	root        *yaml.Node // the document's start
	// marks are the cert-manager annotations of an Ingress-like document
	// (zero for other kinds, whose annotations are not looked at).
	marks shimMarks
}

// readHead reads apiVersion and kind straight from the root node (decoding
// the whole document twice would double the cost of a large repository).
// Aliases (kind: *k) and merge keys (<<: *base) are resolved as the YAML
// decoder will resolve them when the document is read.
func readHead(root *yaml.Node) head {
	h := head{root: root}
	var mergeKey, merge *yaml.Node // <<: and its value
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "apiVersion":
			h.apiVersions = append(h.apiVersions, headField{scalarValue(v), k, v})
		case "kind":
			h.kinds = append(h.kinds, headField{scalarValue(v), k, v})
		case "<<":
			mergeKey, merge = k, v
		}
	}
	if merge != nil && (len(h.apiVersions) == 0 || len(h.kinds) == 0) {
		var m struct {
			APIVersion *string `yaml:"apiVersion"`
			Kind       *string `yaml:"kind"`
		}
		if root.Decode(&m) == nil {
			if len(h.apiVersions) == 0 && m.APIVersion != nil {
				k, v := mergedEntry(mergeKey, merge, "apiVersion")
				h.apiVersions = append(h.apiVersions, headField{*m.APIVersion, k, v})
			}
			if len(h.kinds) == 0 && m.Kind != nil {
				k, v := mergedEntry(mergeKey, merge, "kind")
				h.kinds = append(h.kinds, headField{*m.Kind, k, v})
			}
		}
	}
	for _, k := range h.kinds {
		if isShimKind(k.value) {
			h.marks = readShimMarks(root)
			break
		}
	}
	return h
}

// mergedEntry finds where a merge key's value (<<: *base, or a list of
// them) writes key, as the decoder reads it: the first mapping that has
// it wins. A problem with the merged value then points at the text that
// holds it, in the anchored mapping; mergeKey and merge when it is not
// found there.
func mergedEntry(mergeKey, merge *yaml.Node, key string) (k, v *yaml.Node) {
	maps := []*yaml.Node{merge}
	if deref(merge).Kind == yaml.SequenceNode {
		maps = deref(merge).Content
	}
	for _, m := range maps {
		if k, v := mappingEntry(deref(m), key); k != nil {
			return k, v
		}
	}
	return mergeKey, merge
}

// deref follows an alias to its anchored node (a bounded chain).
func deref(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 8; depth++ {
		n = n.Alias
	}
	return n
}

// scalarValue is the text of a scalar node, following aliases; "" for a
// mapping or sequence.
func scalarValue(n *yaml.Node) string {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// classify decides what to do with a document. For refuse, the error is
// located at the value of the apiVersion or kind it is about (the field's
// key when it is set twice, the document's start when it is missing).
func (h head) classify() (verdict, *fieldError) {
	if len(h.apiVersions) > 1 || len(h.kinds) > 1 {
		return h.classifyDuplicates()
	}
	var api, kind *headField
	if len(h.apiVersions) == 1 {
		api = &h.apiVersions[0]
	}
	if len(h.kinds) == 1 {
		kind = &h.kinds[0]
	}
	return classifyOne(api, kind, h.root, h.marks)
}

// classifyDuplicates refuses a document with apiVersion or kind set twice
// if any reading of it is cert-manager's.
func (h head) classifyDuplicates() (verdict, *fieldError) {
	apis, kinds := ptrs(h.apiVersions), ptrs(h.kinds)
	for _, a := range apis {
		for _, k := range kinds {
			if v, _ := classifyOne(a, k, h.root, h.marks); v != skip {
				f, at := "kind", h.root
				if len(h.kinds) > 1 {
					at = h.kinds[1].key
				} else {
					f, at = "apiVersion", h.apiVersions[1].key
				}
				return refuse, &fieldError{node: at, field: f, msg: "is set more than once: a manifest with duplicate keys is read differently by different tools; " + whatIsRead}
			}
		}
	}
	return skip, nil
}

// ptrs lists the values of a field, or a single nil when it is missing.
func ptrs(fs []headField) []*headField {
	if len(fs) == 0 {
		return []*headField{nil}
	}
	out := make([]*headField, len(fs))
	for i := range fs {
		out[i] = &fs[i]
	}
	return out
}

// classifyOne applies the rules of verdict's doc comment to one apiVersion
// and kind, either of which may be missing (nil).
func classifyOne(api, kind *headField, doc *yaml.Node, marks shimMarks) (verdict, *fieldError) {
	var apiVersion, k string
	apiAt, kindAt := doc, doc
	if api != nil {
		apiVersion, apiAt = api.value, api.val
	}
	if kind != nil {
		k, kindAt = kind.value, kind.val
	}
	g, _, hasVersion := strings.Cut(apiVersion, "/")
	if !hasVersion {
		g = "" // the core group: apiVersion: v1
	}
	at := func(n *yaml.Node, field, format string, args ...any) (verdict, *fieldError) {
		msg := fmt.Sprintf(format, args...)
		if strings.HasSuffix(msg, "?") {
			msg += " " + whatIsRead
		} else {
			msg += "; " + whatIsRead
		}
		return refuse, &fieldError{node: n, field: field, msg: msg}
	}
	nearKind, kindIsNear := nearestKind(k)

	switch {
	case g == group:
		switch {
		case k == kindCert || k == KindIssuer || k == KindClusterIssuer:
			if apiVersion != APIVersion {
				return at(apiAt, "apiVersion", "%s is not supported: use %s", clip(apiVersion), APIVersion)
			}
			return read, nil
		case k == "CertificateRequest":
			return skip, nil // see verdict: harmless to skip
		case kind == nil || k == "":
			return at(apiAt, "apiVersion", "%s with no kind: did you mean kind: Certificate, Issuer or ClusterIssuer?", clip(apiVersion))
		case kindIsNear:
			return at(kindAt, "kind", "%s: did you mean kind: %s?", clip(k), nearKind)
		case strings.HasSuffix(k, "List"):
			return at(kindAt, "kind", "%s: certsync does not read Lists: write each item as its own document, separated by ---", clip(k))
		default:
			return at(kindAt, "kind", "%s is not a kind certsync reads under %s", clip(k), group)
		}
	case nearGroup(g) || (!hasVersion && (apiVersion == group || nearGroup(apiVersion))):
		return at(apiAt, "apiVersion", "%s: did you mean apiVersion: %s?", clip(apiVersion), APIVersion)
	case kindIsNear && !otherProjectsGroup(g):
		want := "apiVersion: " + APIVersion
		if k != nearKind {
			want += " and kind: " + nearKind
		}
		if apiVersion == "" {
			return at(kindAt, "kind", "%s has no apiVersion: did you mean %s?", clip(k), want)
		}
		if g == "certmanager.k8s.io" {
			return at(apiAt, "apiVersion", "%s is cert-manager's API before 0.11, which certsync does not read: did you mean %s?", clip(apiVersion), want)
		}
		return at(apiAt, "apiVersion", "%s with kind: %s: did you mean %s?", clip(apiVersion), clip(k), want)
	case apiVersion == "v1" && k == "Secret":
		return readSecret, nil
	case apiVersion == "v1" && k == "List":
		return readList, nil
	case shimGroup(g, k) && marks.ours(k):
		return readShim, nil
	}
	return skip, nil
}

// nearestKind returns the kind certsync reads that k is a typo of
// (or equal to), ignoring case.
func nearestKind(k string) (string, bool) {
	best, bestDist := "", maxTypo+1
	for _, want := range []string{kindCert, KindIssuer, KindClusterIssuer} {
		if d := typoDistance(k, want); d < bestDist {
			best, bestDist = want, d
		}
	}
	return best, best != ""
}

// nearGroup reports whether g is a typo of cert-manager.io (but not it):
// a few edits away, the same once case, '-' and '.' are ignored
// (certmanager.io), or missing its domain (cert-manager).
func nearGroup(g string) bool {
	if g == "" || g == group {
		return false
	}
	squash := func(s string) string {
		return strings.NewReplacer("-", "", ".", "").Replace(strings.ToLower(s))
	}
	sq := squash(g)
	return typoDistance(g, group) <= maxTypo || sq == squash(group) || sq == "certmanager"
}

// otherProjectsGroup reports whether g belongs to a project known to define
// its own kinds named Certificate or Issuer, which are not typos of
// cert-manager's: AWS Controllers for Kubernetes (acm, acmpca), Crossplane
// providers, Knative's internal networking, Gardener's cert-management.
func otherProjectsGroup(g string) bool {
	switch g {
	case "networking.internal.knative.dev", "cert.gardener.cloud":
		return true
	}
	for _, suffix := range []string{".services.k8s.aws", ".upbound.io", ".crossplane.io"} {
		if strings.HasSuffix(g, suffix) {
			return true
		}
	}
	return false
}

// typoDistance is the optimal string alignment distance (Levenshtein plus
// transpositions of neighbours) between a and b, ignoring case. Strings
// whose lengths differ by more than maxTypo are reported as maxTypo+1
// without comparing them, so a huge value costs next to nothing.
func typoDistance(a, b string) int {
	const far = maxTypo + 1
	if len(a) > utf8.UTFMax*(len(b)+far) || len(b) > utf8.UTFMax*(len(a)+far) {
		return far
	}
	ra, rb := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	if abs(len(ra)-len(rb)) > maxTypo {
		return far
	}
	// Three rows suffice: the transposition looks two rows back.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
