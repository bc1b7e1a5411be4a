package declared

import (
	"fmt"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Secret is a SOPS-encrypted Kubernetes Secret committed in the repository.
// Other declarations may refer to it, e.g. the DNS-01 credentials and EAB
// keys an issuer names with its *SecretRef fields. Parsing reads only its
// plaintext metadata; certsync decrypts it, with the agent's own key, only
// when an issuer needs one of its keys.
type Secret struct {
	// Namespace defaults to "default", as kubectl would apply it.
	Namespace string
	Name      string
	Source    Source
}

// Key returns "namespace/name".
func (s *Secret) Key() string { return s.Namespace + "/" + s.Name }

// sopsValuePrefix starts every value SOPS has encrypted.
const sopsValuePrefix = "ENC["

// parseSecret reads an apiVersion: v1 kind: Secret document. A Secret with
// a top-level sops mapping is recorded. A plaintext Secret that carries
// data is a Problem: whoever can read the repository can read it, and
// certsync never uses it. A plaintext Secret without data (a
// service-account token placeholder, say) is not certsync's business:
// ok is false and err nil.
func parseSecret(d *document, path string) (s Secret, ok bool, err error) {
	// Read from the nodes, not decoded: a plaintext Secret is refused or
	// skipped whatever the shape of the rest of it.
	meta := mappingValue(d.root, "metadata")
	name, namespace := "", ""
	if meta != nil {
		name, namespace = scalarValue(mappingValue(meta, "name")), scalarValue(mappingValue(meta, "namespace"))
	}
	// Clipped: an error names the object, and the name is not yet validated.
	d.name, d.namespace = clip(name), namespaceOrDefault(clip(namespace))
	sops := mappingValue(d.root, "sops")
	if sops == nil || sops.Kind != yaml.MappingNode {
		for _, field := range []string{"data", "stringData"} {
			if hasContent(mappingValue(d.root, field)) {
				return s, false, d.failKey("", field, "plaintext Secret with %s: anyone who can read the repository can read it; encrypt it (sops --encrypt --in-place %s) — certsync never uses it", field, path)
			}
		}
		return s, false, nil
	}
	if strings.HasPrefix(name, sopsValuePrefix) || strings.HasPrefix(namespace, sopsValuePrefix) {
		d.name, d.namespace = "", ""
		return s, false, d.fail("metadata", "is encrypted: certsync finds a Secret by its plaintext name and namespace; encrypt only the data (sops --encrypt --encrypted-regex '^(data|stringData)$' --in-place %s)", path)
	}
	if err := validateObjectName(d, name, namespace); err != nil {
		return s, false, err
	}
	for _, field := range []string{"data", "stringData"} {
		if err := requireEncrypted(d, field, path); err != nil {
			return s, false, err
		}
	}
	return Secret{Namespace: namespaceOrDefault(namespace), Name: name, Source: d.src}, true, nil
}

// requireEncrypted refuses a SOPS Secret whose data (or stringData) has a
// value SOPS left in the clear, as --encrypted-regex or
// --unencrypted-suffix can: the Secret looks encrypted but is not.
func requireEncrypted(d *document, field, path string) error {
	m := mappingValue(d.root, field)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			continue
		}
		if v.Kind != yaml.ScalarNode || !strings.HasPrefix(v.Value, sopsValuePrefix) {
			return d.failValue(field, k.Value, "%q is not encrypted: anyone who can read the repository can read it; encrypt it (sops --encrypt --in-place %s)", clip(k.Value), path)
		}
	}
	return nil
}

// hasContent reports whether a data or stringData node holds anything.
func hasContent(n *yaml.Node) bool {
	if n == nil {
		return false
	}
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		return len(n.Content) > 0
	case yaml.ScalarNode:
		return n.Tag != "!!null" && n.Value != ""
	}
	return true
}

// checkSecrets applies the repository-wide rules to Secrets: a
// namespace/name is declared once (otherwise which one an issuer gets
// would depend on file order), and is not the secretName of a Certificate
// (certsync writes that Secret itself). A Secret that breaks one is moved
// to Problems.
func (s *Set) checkSecrets() {
	byKey := map[string][]int{}
	for i := range s.Secrets {
		byKey[s.Secrets[i].Key()] = append(byKey[s.Secrets[i].Key()], i)
	}
	written := map[string]string{}
	for _, c := range s.Certificates {
		written[c.Namespace+"/"+c.SecretName] = c.Key()
	}
	var kept []Secret
	for _, sec := range s.Secrets {
		var err error
		if idx := byKey[sec.Key()]; len(idx) > 1 {
			sources := make([]Source, 0, len(idx))
			for _, i := range idx {
				sources = append(sources, s.Secrets[i].Source)
			}
			// Files are parsed in parallel: list them in a stable order.
			sort.Slice(sources, func(a, b int) bool { return sources[a].before(sources[b]) })
			var where []string
			for _, src := range sources {
				where = append(where, src.String())
			}
			err = fmt.Errorf("declared %d times (%s): keep one", len(idx), strings.Join(where, ", "))
		} else if cert, ok := written[sec.Key()]; ok {
			err = fmt.Errorf("is the spec.secretName of Certificate %s, which certsync writes: give one of them another name", cert)
		}
		if err != nil {
			s.Problems = append(s.Problems, Problem{Source: sec.Source, Object: "Secret " + sec.Key(), Err: err})
			continue
		}
		kept = append(kept, sec)
	}
	s.Secrets = kept
}
