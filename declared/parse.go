// Package declared reads the certificates a repository asks for.
//
// It parses cert-manager.io/v1 Certificate, Issuer and ClusterIssuer
// manifests exactly as cert-manager would read them, applies cert-manager's
// defaults (90-day duration, RSA 2048, issuerRef kind Issuer) and validates
// them with cert-manager's rules. Every problem is reported with the file and
// line it comes from, and a bad declaration never hides a good one: Parse
// returns everything it could read plus the list of problems.
//
// Documents of other kinds (Deployments, Kustomizations, ...) are skipped, so
// a repository can mix certsync's declarations with anything else.
package declared

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// APIVersion is the only cert-manager API version certsync reads.
const APIVersion = "cert-manager.io/v1"

// ErrInvalid marks a declaration that cannot be acted on until it is fixed;
// retrying does not help.
var ErrInvalid = errors.New("invalid declaration")

// Problem is one declaration that could not be used.
type Problem struct {
	Source Source
	// Object is "Kind namespace/name" when the document got that far.
	Object string
	Err    error
}

func (p Problem) Error() string {
	if p.Object != "" {
		return fmt.Sprintf("%s: %s: %v", p.Source, p.Object, p.Err)
	}
	return fmt.Sprintf("%s: %v", p.Source, p.Err)
}

func (p Problem) Unwrap() []error { return []error{ErrInvalid, p.Err} }

// File is one file of the repository.
type File struct {
	Path    string
	Content []byte
}

// Set is what a repository declares.
type Set struct {
	Certificates []Certificate
	Issuers      []Issuer
	Problems     []Problem
}

// IsManifestPath reports whether a repository path may hold declarations:
// YAML files outside certsync's own output folders and not .sops.yaml.
func IsManifestPath(p string, skipPrefixes []string) bool {
	ext := path.Ext(p)
	if ext != ".yaml" && ext != ".yml" {
		return false
	}
	if path.Base(p) == ".sops.yaml" || path.Base(p) == ".sops.yml" {
		return false
	}
	for _, pre := range skipPrefixes {
		if strings.HasPrefix(p, pre) {
			return false
		}
	}
	return true
}

// Parse reads every document of files, then checks the set as a whole:
// unknown issuers, duplicate names and duplicate secretNames.
func Parse(files []File) Set {
	parts := make([]Set, len(files))
	for i, f := range files {
		parts[i] = ParseFile(f)
	}
	return Combine(parts)
}

// ParseFile reads the documents of one file without the checks that need
// the whole repository. Its result depends on the file's content alone, so
// callers may cache it by content hash and Combine cached parts.
func ParseFile(f File) Set {
	var s Set
	parseFile(&s, f)
	return s
}

// Combine joins per-file results and applies the repository-wide checks.
// The parts are not modified.
func Combine(parts []Set) Set {
	var s Set
	for _, p := range parts {
		s.Certificates = append(s.Certificates, p.Certificates...)
		s.Issuers = append(s.Issuers, p.Issuers...)
		s.Problems = append(s.Problems, p.Problems...)
	}
	s.crossCheck()
	return s
}

func parseFile(s *Set, f File) {
	dec := yaml.NewDecoder(bytes.NewReader(f.Content))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// The decoder cannot resynchronise after a syntax error, so the
			// rest of this file is unread; other files carry on.
			s.Problems = append(s.Problems, Problem{Source: Source{File: f.Path}, Err: fmt.Errorf("malformed YAML: %v", err)})
			return
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		src := Source{File: f.Path, Line: root.Line}
		if root.Kind != yaml.MappingNode {
			continue // not a Kubernetes object: not ours to judge
		}
		// Read the two fields straight from the node: decoding the whole
		// document twice would double the cost of a large repository.
		var head struct{ APIVersion, Kind string }
		if n := mappingValue(root, "apiVersion"); n != nil {
			head.APIVersion = n.Value
		}
		if n := mappingValue(root, "kind"); n != nil {
			head.Kind = n.Value
		}
		if !strings.HasPrefix(head.APIVersion, "cert-manager.io/") {
			continue
		}
		switch head.Kind {
		case "Certificate", KindIssuer, KindClusterIssuer:
		default:
			continue
		}
		if head.APIVersion != APIVersion {
			s.Problems = append(s.Problems, Problem{Source: src, Err: fmt.Errorf("apiVersion %s is not supported: use %s", head.APIVersion, APIVersion)})
			continue
		}
		d := &document{root: root, src: src}
		if head.Kind == "Certificate" {
			c, err := parseCertificate(d)
			if err != nil {
				s.Problems = append(s.Problems, d.problem("Certificate", err))
				continue
			}
			s.Certificates = append(s.Certificates, c)
		} else {
			iss, err := parseIssuer(d, head.Kind)
			if err != nil {
				s.Problems = append(s.Problems, d.problem(head.Kind, err))
				continue
			}
			s.Issuers = append(s.Issuers, iss)
		}
	}
}

// document is one YAML document with what is needed to point at its lines.
type document struct {
	root      *yaml.Node
	src       Source
	namespace string
	name      string
}

// fieldError is a validation error located at a field of the document.
type fieldError struct {
	line  int
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// fail builds a fieldError for the dotted field path ("spec.dnsNames[1]").
func (d *document) fail(field string, format string, args ...any) error {
	return &fieldError{line: d.line(field), field: field, msg: fmt.Sprintf(format, args...)}
}

func (d *document) problem(kind string, err error) Problem {
	p := Problem{Source: d.src, Err: err}
	if d.name != "" {
		p.Object = kind + " " + d.name
		if d.namespace != "" {
			p.Object = kind + " " + d.namespace + "/" + d.name
		}
	}
	var fe *fieldError
	if errors.As(err, &fe) && fe.line > 0 {
		p.Source.Line = fe.line
	}
	return p
}

// line finds the line of a dotted field path such as "spec.dnsNames[1]",
// falling back to the deepest ancestor found.
func (d *document) line(field string) int {
	n := d.root
	best := n.Line
	for _, part := range strings.Split(field, ".") {
		idx := -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			fmt.Sscanf(part[i+1:len(part)-1], "%d", &idx)
			part = part[:i]
		}
		next := mappingValue(n, part)
		if next == nil {
			return best
		}
		n = next
		best = n.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return best
			}
			n = n.Content[idx]
			best = n.Line
		}
	}
	return best
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// decode fills v from the document, turning type errors into a message
// with the document's own line numbers.
func (d *document) decode(v any) error {
	if err := d.root.Decode(v); err != nil {
		return fmt.Errorf("cannot read manifest: %v", err)
	}
	return nil
}
