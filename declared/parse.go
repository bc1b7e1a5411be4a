// Package declared reads the certificates a repository asks for.
//
// It parses cert-manager.io/v1 Certificate, Issuer and ClusterIssuer
// manifests exactly as cert-manager would read them, applies cert-manager's
// defaults (90-day duration, RSA 2048, issuerRef kind Issuer) and validates
// them with cert-manager's rules. Every problem is reported with the file and
// line it comes from, and a bad declaration never hides a good one: Parse
// returns everything it could read plus the list of problems.
//
// An Ingress or a Gateway API Gateway with cert-manager's annotations
// (cert-manager.io/cluster-issuer, ...) stands for Certificates, read as
// cert-manager's ingress-shim and gateway-shim make them (shim.go) and
// validated with the same rules.
//
// Documents of other kinds (Deployments, Kustomizations, ...) are skipped, so
// a repository can mix certsync's declarations with anything else. A
// document that looks meant for cert-manager but that certsync cannot read
// (kind: Certficate, apiVersion: cert-manger.io/v1) is never skipped: it is
// a Problem, because a skipped Certificate would be pruned (see verdict).
//
// SOPS-encrypted Secrets are recorded so issuers can refer to them;
// plaintext Secrets that carry data are Problems. Input is bounded before it
// is decoded or validated (MaxFileSize, MaxNames, MaxAnnotationsSize).
package declared

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
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
	// Secrets are the SOPS-encrypted Secrets of the repository, unique by
	// namespace/name.
	Secrets  []Secret
	Problems []Problem
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
		s.Secrets = append(s.Secrets, p.Secrets...)
		s.Problems = append(s.Problems, p.Problems...)
	}
	s.crossCheck()
	return s
}

// parseFile reads the documents of one file into s. The file's size is
// checked first, before any decoding: a huge file costs nothing to refuse.
func parseFile(s *Set, f File) {
	if p := fileTooLarge(f); p != nil {
		s.Problems = append(s.Problems, *p)
		return
	}
	first := len(s.Problems)
	dec := yaml.NewDecoder(bytes.NewReader(f.Content))
	for {
		if len(s.Problems)-first > MaxProblemsPerFile {
			// Enough to act on; the rest would only flood the logs. Nothing
			// is pruned while these stand, so stopping here is safe.
			s.Problems = append(s.Problems[:first+MaxProblemsPerFile], Problem{
				Source: s.Problems[first+MaxProblemsPerFile].Source,
				Err:    fmt.Errorf("more than %d problems in this file: the rest of it is unread until these are fixed", MaxProblemsPerFile),
			})
			return
		}
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// The decoder cannot resynchronise after a syntax error, so the
			// rest of this file is unread; other files carry on.
			s.Problems = append(s.Problems, malformed(f.Path, err))
			return
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			continue // not a Kubernetes object: not ours to judge
		}
		parseDocument(s, f.Path, root)
	}
}

// parseDocument reads one document whose root is a mapping.
func parseDocument(s *Set, path string, root *yaml.Node) {
	d := &document{root: root, src: Source{File: path, Line: root.Line}}
	h := readHead(root)
	v, ferr := h.classify()
	switch v {
	case skip:
	case refuse:
		s.Problems = append(s.Problems, d.problem("", ferr))
	case readList:
		checkListItems(s, d)
	case readShim:
		kind := h.kinds[0].value
		certs, errs := parseShim(d, h.apiVersions[0].value, kind)
		for _, err := range errs {
			s.Problems = append(s.Problems, d.problem(kind, err))
		}
		s.Certificates = append(s.Certificates, certs...)
	case readSecret:
		sec, ok, err := parseSecret(d, path)
		if err != nil {
			s.Problems = append(s.Problems, d.problem("Secret", err))
		} else if ok {
			s.Secrets = append(s.Secrets, sec)
		}
	case read:
		kind := h.kinds[0].value
		if kind == kindCert {
			c, err := parseCertificate(d)
			if err != nil {
				s.Problems = append(s.Problems, d.problem(kind, err))
				return
			}
			s.Certificates = append(s.Certificates, c)
			return
		}
		iss, err := parseIssuer(d, kind)
		if err != nil {
			s.Problems = append(s.Problems, d.problem(kind, err))
			return
		}
		s.Issuers = append(s.Issuers, iss)
	}
}

// checkListItems refuses the cert-manager objects inside a v1 List: kubectl
// applies a List's items, but certsync reads documents, so a Certificate
// in a List would be skipped (and pruned) without this.
func checkListItems(s *Set, d *document) {
	items := mappingValue(d.root, "items")
	if items == nil || items.Kind != yaml.SequenceNode {
		return
	}
	for i, item := range items.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		h := readHead(item)
		switch v, _ := h.classify(); v {
		case read, refuse, readShim:
			found := "a cert-manager object"
			if len(h.kinds) == 1 && len(h.apiVersions) == 1 {
				found = clip(h.apiVersions[0].value) + " " + clip(h.kinds[0].value)
			}
			err := &fieldError{line: item.Line, field: fmt.Sprintf("items[%d]", i), msg: found + " inside a List: certsync does not read Lists; write each item as its own document, separated by ---; " + whatIsRead}
			s.Problems = append(s.Problems, d.problem("", err))
		}
	}
}

// document is one YAML document with what is needed to point at its lines.
type document struct {
	root      *yaml.Node
	src       Source
	namespace string
	name      string
	// shim is set while the Certificate an Ingress or Gateway stands for is
	// validated (shim.go): the validators name Certificate fields
	// (spec.duration), and shim says where each was written on this
	// document (an annotation, a spec.tls entry), so a problem points there.
	shim *shimPlaces
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
	msg := fmt.Sprintf(format, args...)
	if p, ok := d.shim.locate(field); ok {
		return d.errorAt(p, msg)
	}
	return &fieldError{line: d.line(field), field: field, msg: msg}
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
	_, line := d.node(field)
	return line
}

// node finds the node of a dotted field path ("" is the root), or nil, and
// the line of the deepest node found on the way.
func (d *document) node(field string) (*yaml.Node, int) {
	n := d.root
	best := n.Line
	if field == "" {
		return n, best
	}
	for _, part := range strings.Split(field, ".") {
		idx := -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			fmt.Sscanf(part[i+1:len(part)-1], "%d", &idx)
			part = part[:i]
		}
		next := mappingValue(n, part)
		if next == nil {
			return nil, best
		}
		n = next
		best = n.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return nil, best
			}
			n = n.Content[idx]
			best = n.Line
		}
	}
	return n, best
}

// failKey is fail for one key of the mapping at field, located at the
// key's own line. Keys are taken literally: "tls.crt" or
// "example.com/team" are one key, not a path.
func (d *document) failKey(field, key string, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(field, "metadata") {
		if p, ok := d.shim.locate(field + "." + key); ok {
			return d.errorAt(p, msg)
		}
	}
	return d.keyError(field, key, msg)
}

// keyError is failKey's error, never relocated by d.shim.
func (d *document) keyError(field, key, msg string) error {
	line := d.keyLine(field, key)
	name := fmt.Sprintf("%s[%q]", field, clip(key))
	switch {
	case field == "":
		name = clip(key)
	case isIdentifier(key):
		name = field + "." + key
	}
	return &fieldError{line: line, field: name, msg: msg}
}

// errorAt is the fieldError for a place of the document.
func (d *document) errorAt(p place, msg string) error {
	if p.key != "" {
		return d.keyError(p.field, p.key, msg)
	}
	return &fieldError{line: d.line(p.field), field: p.field, msg: msg}
}

// keyLine is the line of one key of the mapping at field (the mapping's
// own line when the key is absent).
func (d *document) keyLine(field, key string) int {
	n, line := d.node(field)
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i].Line
			}
		}
	}
	return line
}

// isIdentifier reports whether a key can be written as a path element
// (spec.dnsNames) rather than quoted (annotations["example.com/x"]).
func isIdentifier(key string) bool {
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return key != ""
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
	err := d.root.Decode(v)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		if m := typeErrorLine.FindStringSubmatch(te.Errors[0]); m != nil {
			line, _ := strconv.Atoi(m[1])
			field := d.pathAt(d.root, "", line)
			if field == "" {
				field = "manifest"
			}
			return &fieldError{line: line, field: field, msg: fmt.Sprintf("must be %s, not %s", goKindName(m[3]), yamlKindName(m[2]))}
		}
	}
	return fmt.Errorf("cannot read manifest: %v", err)
}

// typeErrorLine parses one of yaml.v3's type errors:
// "line 8: cannot unmarshal !!str `web.exa...` into []string".
var typeErrorLine = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+) .* into (\S+)$`)

// pathAt is the dotted path of the deepest field whose value starts on
// line, for messages about a value of the wrong type.
func (d *document) pathAt(n *yaml.Node, prefix string, line int) string {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			p := key
			if prefix != "" {
				p = prefix + "." + key
			}
			if deeper := d.pathAt(val, p, line); deeper != "" {
				return deeper
			}
			if val.Line == line || n.Content[i].Line == line {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			if deeper := d.pathAt(item, p, line); deeper != "" {
				return deeper
			}
			if item.Line == line && item.Kind != yaml.MappingNode {
				return p
			}
		}
	}
	return ""
}

func yamlKindName(tag string) string {
	switch tag {
	case "str":
		return "a string"
	case "int", "float":
		return "a number"
	case "bool":
		return "true/false"
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "null":
		return "empty"
	}
	return "!!" + tag
}

func goKindName(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "declared."), strings.HasPrefix(goType, "struct"):
		return "a mapping"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "*int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	}
	return "a " + goType
}

// malformed locates a YAML syntax error at its line and adds what the
// usual causes are, which yaml.v3's wording does not say.
func malformed(path string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	src := Source{File: path}
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		src.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case strings.Contains(msg, "found character that cannot start any token"):
		msg += " (a tab in the indentation? YAML indents with spaces only)"
	case strings.Contains(msg, "found unexpected end of stream"), strings.Contains(msg, "did not find expected"):
		msg += " (an unclosed quote or bracket, or an indentation that does not line up?)"
	}
	return Problem{Source: src, Err: fmt.Errorf("malformed YAML: %s", msg)}
}

var syntaxLine = regexp.MustCompile(`^line (\d+): (.*)$`)
