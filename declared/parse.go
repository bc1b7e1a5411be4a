// Package declared reads the certificates a repository asks for.
//
// It parses cert-manager.io/v1 Certificate, Issuer and ClusterIssuer
// manifests exactly as cert-manager would read them, applies cert-manager's
// defaults (90-day duration, RSA 2048, issuerRef kind Issuer) and validates
// them with cert-manager's rules. Every problem is reported with the file,
// line and column it comes from (position.go), and a bad declaration never
// hides a good one: Parse returns everything it could read plus the list of
// problems.
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

	"github.com/certsync/certsync/internal/blockyaml"
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
	// Sized first: a Certificate is a large value, and growing a slice of
	// 10,000 of them by appending copied them over and over (half of an
	// idle daemon pass).
	var s Set
	var certificates int
	for _, p := range parts {
		certificates += len(p.Certificates)
	}
	s.Certificates = make([]Certificate, 0, certificates)
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
//
// The documents come from blockyaml's fast path when it reads the file
// (the manifests people write: block and one-line flow collections,
// comments above keys, several documents), else from the YAML library,
// for the whole file. Both give the same nodes, so what is declared and
// every problem with its file:line are the same either way; the fast path
// only costs a fraction of the library's time and garbage.
func parseFile(s *Set, f File) {
	if p := fileTooLarge(f); p != nil {
		s.Problems = append(s.Problems, *p)
		return
	}
	if docs, err := blockyaml.ParseDocuments(f.Content); err == nil {
		parseDocuments(s, f, documentsOf(docs))
		return
	}
	parseDocuments(s, f, libraryDocuments(f.Content))
}

// nextDocument returns a file's documents one by one, then io.EOF.
type nextDocument func() (*yaml.Node, error)

// documentsOf returns docs one by one.
func documentsOf(docs []*yaml.Node) nextDocument {
	return func() (*yaml.Node, error) {
		if len(docs) == 0 {
			return nil, io.EOF
		}
		doc := docs[0]
		docs = docs[1:]
		return doc, nil
	}
}

// libraryDocuments decodes the documents of content with the YAML library
// as they are asked for: after a syntax error the rest is never parsed.
func libraryDocuments(content []byte) nextDocument {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	return func() (*yaml.Node, error) {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			return nil, err
		}
		return &doc, nil
	}
}

// parseDocuments reads the documents next returns into s.
func parseDocuments(s *Set, f File, next nextDocument) {
	first := len(s.Problems)
	t := NewText(f.Content)
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
		doc, err := next()
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
		parseDocument(s, f.Path, t, root)
	}
}

// parseDocument reads one document whose root is a mapping.
func parseDocument(s *Set, path string, t *Text, root *yaml.Node) {
	d := &document{root: root, text: t, src: Source{File: path}}
	d.src.Line, d.src.Column = t.pos(root)
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
			err := &fieldError{node: item, field: fmt.Sprintf("items[%d]", i), msg: found + " inside a List: certsync does not read Lists; write each item as its own document, separated by ---; " + whatIsRead}
			s.Problems = append(s.Problems, d.problem("", err))
		}
	}
}

// document is one YAML document with what is needed to point at its lines.
type document struct {
	root *yaml.Node
	// text is the file's content, to turn a node's position into a Source.
	text      *Text
	src       Source
	namespace string
	name      string
	// shim is set while the Certificate an Ingress or Gateway stands for is
	// validated (shim.go): the validators name Certificate fields
	// (spec.duration), and shim says where each was written on this
	// document (an annotation, a spec.tls entry), so a problem points there.
	shim *shimPlaces
}

// fieldError is a validation error located at a node of the document: the
// value a message is about, the key of a field that should not be there,
// or the start of the object. yaml.v3's type errors name a line that may
// match no node: then node is nil and only line is known.
type fieldError struct {
	node  *yaml.Node
	line  int // when node is nil
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// A problem is about a field's value (a bad DNS name, a duration that does
// not parse: fail, failValue) or about the field itself (an unknown or
// misspelt field, one that cannot be combined with another: failField,
// failKey), and points at the value or at the key accordingly. A field
// that is missing points at the value of its nearest parent.

// fail builds a fieldError about the value of the dotted field path
// ("spec.dnsNames[1]").
func (d *document) fail(field string, format string, args ...any) error {
	return d.failAt(field, false, fmt.Sprintf(format, args...))
}

// failField is fail about the field itself, located at its key (at the
// item for a list item).
func (d *document) failField(field string, format string, args ...any) error {
	return d.failAt(field, true, fmt.Sprintf(format, args...))
}

func (d *document) failAt(field string, onKey bool, msg string) error {
	if p, exact, ok := d.shim.locate(field); ok {
		return d.errorAt(p, onKey && exact, msg)
	}
	return &fieldError{node: d.nodeOf(field, onKey), field: field, msg: msg}
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
	if errors.As(err, &fe) {
		switch {
		case fe.node != nil:
			p.Source.Line, p.Source.Column = d.text.pos(fe.node)
		case fe.line > 0:
			p.Source.Line, p.Source.Column = fe.line, 0
		}
	}
	return p
}

// nodeOf is the node a problem with a dotted field path such as
// "spec.dnsNames[1]" points at: its value, or with onKey its key (a list
// item has no key: the item). When the path is not all there, the value
// of the deepest ancestor found.
func (d *document) nodeOf(field string, onKey bool) *yaml.Node {
	n, _ := d.walk(field, onKey)
	return n
}

// walk is nodeOf, and whether the whole path was found.
func (d *document) walk(field string, onKey bool) (*yaml.Node, bool) {
	n := d.root
	if field == "" {
		return n, true
	}
	parts := strings.Split(field, ".")
	for i, part := range parts {
		idx := -1
		if j := strings.IndexByte(part, '['); j >= 0 && strings.HasSuffix(part, "]") {
			fmt.Sscanf(part[j+1:len(part)-1], "%d", &idx)
			part = part[:j]
		}
		key, next := mappingEntry(n, part)
		if next == nil {
			return n, false
		}
		if onKey && idx < 0 && i == len(parts)-1 {
			return key, true
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return n, false
			}
			n = n.Content[idx]
		}
	}
	return n, true
}

// failKey is failField for one key of the mapping at field, located at
// the key. Keys are taken literally: "tls.crt" or "example.com/team" are
// one key, not a path.
func (d *document) failKey(field, key string, format string, args ...any) error {
	return d.failLiteral(field, key, true, fmt.Sprintf(format, args...))
}

// failValue is fail for the value of one key of the mapping at field (an
// annotation's value, say), keys taken literally as by failKey.
func (d *document) failValue(field, key string, format string, args ...any) error {
	return d.failLiteral(field, key, false, fmt.Sprintf(format, args...))
}

func (d *document) failLiteral(field, key string, onKey bool, msg string) error {
	if !strings.HasPrefix(field, "metadata") {
		if p, exact, ok := d.shim.locate(field + "." + key); ok {
			return d.errorAt(p, onKey && exact, msg)
		}
	}
	return d.literalError(field, key, onKey, msg)
}

// keyError is failKey's error, never relocated by d.shim.
func (d *document) keyError(field, key, msg string) error {
	return d.literalError(field, key, true, msg)
}

// valueError is failValue's error, never relocated by d.shim.
func (d *document) valueError(field, key, msg string) error {
	return d.literalError(field, key, false, msg)
}

func (d *document) literalError(field, key string, onKey bool, msg string) error {
	name := fmt.Sprintf("%s[%q]", field, clip(key))
	switch {
	case field == "":
		name = clip(key)
	case isIdentifier(key):
		name = field + "." + key
	}
	return &fieldError{node: d.literalNode(field, key, onKey), field: name, msg: msg}
}

// errorAt is the fieldError for a place of the document, at the key or
// the value written there.
func (d *document) errorAt(p place, onKey bool, msg string) error {
	if p.key != "" {
		return d.literalError(p.field, p.key, onKey, msg)
	}
	return &fieldError{node: d.nodeOf(p.field, onKey), field: p.field, msg: msg}
}

// literalNode is the key (onKey) or the value of one key of the mapping at
// field, or the mapping's own node when the key is absent.
func (d *document) literalNode(field, key string, onKey bool) *yaml.Node {
	n, found := d.walk(field, false)
	if !found {
		return n
	}
	k, v := mappingEntry(n, key)
	switch {
	case k == nil:
		return n
	case onKey:
		return k
	}
	return v
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
	_, v := mappingEntry(n, key)
	return v
}

// mappingEntry is the key and value nodes of key in mapping n, or nils.
func mappingEntry(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

// decode fills v from the document, turning type errors into a message
// located at the value of the wrong type. yaml.v3 names only its line: the
// value is the deepest one starting on that line.
func (d *document) decode(v any) error {
	err := d.root.Decode(v)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		if m := typeErrorLine.FindStringSubmatch(te.Errors[0]); m != nil {
			line, _ := strconv.Atoi(m[1])
			msg := fmt.Sprintf("must be %s, not %s", goKindName(m[3]), yamlKindName(m[2]))
			field, n := d.pathAt(d.root, "", line)
			if field == "" {
				return &fieldError{line: line, field: "manifest", msg: msg}
			}
			return &fieldError{node: n, field: field, msg: msg}
		}
	}
	return fmt.Errorf("cannot read manifest: %v", err)
}

// typeErrorLine parses one of yaml.v3's type errors:
// "line 8: cannot unmarshal !!str `web.exa...` into []string".
var typeErrorLine = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+) .* into (\S+)$`)

// pathAt is the dotted path of the deepest field whose value starts on
// line, and that value (its key when only the key is on line), for
// messages about a value of the wrong type.
func (d *document) pathAt(n *yaml.Node, prefix string, line int) (string, *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := key.Value
			if prefix != "" {
				p = prefix + "." + key.Value
			}
			if deeper, at := d.pathAt(val, p, line); deeper != "" {
				return deeper, at
			}
			switch line {
			case val.Line:
				return p, val
			case key.Line:
				return p, key
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			if deeper, at := d.pathAt(item, p, line); deeper != "" {
				return deeper, at
			}
			if item.Line == line && item.Kind != yaml.MappingNode {
				return p, item
			}
		}
	}
	return "", nil
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
