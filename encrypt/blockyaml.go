package encrypt

import (
	"errors"
	"strings"

	"go.yaml.in/yaml/v3"
)

// errNotPlainBlock is returned by parseBlockYAML for anything outside the
// subset it reads; the caller then parses with the YAML library.
var errNotPlainBlock = errors.New("not the plain block YAML this parser reads")

// parseBlockYAML reads the YAML that sops writes for a Kubernetes manifest
// into the nodes the YAML library would give: one document of block
// mappings and sequences, keys and values on one line each, plain and
// double-quoted scalars without escapes, and `|` literal blocks. That is
// every file certsync and the sops CLI write for a Secret, and the YAML
// library's scanner was a fifth of a restore's CPU time; this reads the
// same file in a twentieth of it.
//
// It is a fast path, never a second opinion: whatever it does not read
// exactly as the YAML library does — comments, anchors, tags, flow
// collections, quoting with escapes, folded or chomped blocks, several
// documents, tabs, carriage returns, a multi-line plain scalar, a last
// line without its line break — ends in
// errNotPlainBlock, and plain scalars are resolved (string, number, bool,
// null, timestamp) by the library's own rules through Node.ShortTag. The
// tests compare both readings over every file shape certsync meets and
// under fuzzing.
func parseBlockYAML(in []byte) (*yaml.Node, error) {
	if len(in) == 0 || in[len(in)-1] != '\n' {
		return nil, errNotPlainBlock // a last line without its line break: chomping again
	}
	for _, c := range in {
		// ASCII without control characters (a byte order mark, a tab, a
		// carriage return) and without comments.
		if (c < ' ' && c != '\n') || c >= 0x7f || c == '#' {
			return nil, errNotPlainBlock
		}
	}
	p := blockParser{lines: strings.Split(strings.TrimSuffix(string(in), "\n"), "\n")}
	root, err := p.mapping(0)
	if err != nil {
		return nil, err
	}
	if p.skipBlank(); p.i != len(p.lines) {
		return nil, errNotPlainBlock // something less indented than the document, or left over
	}
	return root, nil
}

type blockParser struct {
	lines []string
	i     int // the next line
}

// indentOf is the number of leading spaces of line.
func indentOf(line string) int {
	return len(line) - len(strings.TrimLeft(line, " "))
}

func (p *blockParser) skipBlank() {
	for p.i < len(p.lines) && strings.TrimSpace(p.lines[p.i]) == "" {
		p.i++
	}
}

// next returns the next non-blank line's indentation, or -1 at the end.
func (p *blockParser) next() int {
	p.skipBlank()
	if p.i == len(p.lines) {
		return -1
	}
	return indentOf(p.lines[p.i])
}

// mapping reads the keys at exactly indent until a line less indented.
func (p *blockParser) mapping(indent int) (*yaml.Node, error) {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for {
		ind := p.next()
		if ind < indent {
			break
		}
		if ind > indent {
			return nil, errNotPlainBlock
		}
		line := p.lines[p.i][indent:]
		p.i++
		if err := p.entry(m, line, indent); err != nil {
			return nil, err
		}
	}
	if len(m.Content) == 0 {
		return nil, errNotPlainBlock
	}
	return m, nil
}

// entry reads "key: value" (or "key:" and a nested block) into m; line
// starts at the key, which is at column indent.
func (p *blockParser) entry(m *yaml.Node, line string, indent int) error {
	key, rest, ok := splitKey(line)
	if !ok {
		return errNotPlainBlock
	}
	k, err := plainScalar(key)
	if err != nil {
		return err
	}
	var v *yaml.Node
	if rest == "" {
		v, err = p.nested(indent)
	} else {
		v, err = p.value(rest, indent)
	}
	if err != nil {
		return err
	}
	m.Content = append(m.Content, k, v)
	return nil
}

// nested reads the block under a key that has nothing after its colon:
// a mapping or a sequence indented further.
func (p *blockParser) nested(indent int) (*yaml.Node, error) {
	ind := p.next()
	if ind <= indent {
		return nil, errNotPlainBlock // a null value, or a sequence at the key's column
	}
	if strings.HasPrefix(p.lines[p.i][ind:], "-") {
		return p.sequence(ind)
	}
	return p.mapping(ind)
}

// sequence reads "- item" lines at exactly indent.
func (p *blockParser) sequence(indent int) (*yaml.Node, error) {
	s := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for {
		ind := p.next()
		if ind < indent {
			break
		}
		line := p.lines[p.i][indent:]
		if ind > indent || !strings.HasPrefix(line, "- ") {
			return nil, errNotPlainBlock
		}
		p.i++
		item := line[2:]
		itemIndent := indent + 2
		if strings.HasPrefix(item, " ") || item == "" {
			return nil, errNotPlainBlock
		}
		var v *yaml.Node
		var err error
		if _, _, isKey := splitKey(item); isKey {
			// A mapping that starts on the dash's line: its first key is
			// at itemIndent and the others follow at that column.
			v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if err = p.entry(v, item, itemIndent); err == nil {
				var more *yaml.Node
				if p.next() == itemIndent {
					more, err = p.mapping(itemIndent)
					if err == nil {
						v.Content = append(v.Content, more.Content...)
					}
				}
			}
		} else {
			v, err = p.value(item, indent)
		}
		if err != nil {
			return nil, err
		}
		s.Content = append(s.Content, v)
	}
	return s, nil
}

// value reads a scalar written after "key: " or "- ", or a literal block
// that starts there; indent is the column of its key or dash.
func (p *blockParser) value(text string, indent int) (*yaml.Node, error) {
	var n *yaml.Node
	switch {
	case text == "|":
		return p.literal(indent)
	case text[0] == '"':
		body, ok := strings.CutSuffix(text[1:], `"`)
		if !ok || strings.ContainsAny(body, `"\`) {
			return nil, errNotPlainBlock
		}
		n = &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Tag: "!!str", Value: body}
	default:
		var err error
		if n, err = plainScalar(text); err != nil {
			return nil, err
		}
	}
	// A plain scalar may go on over more indented lines; that, or
	// anything else more indented than the key, is not read here.
	if ind := p.next(); ind > indent {
		return nil, errNotPlainBlock
	}
	return n, nil
}

// literal reads the lines of a `|` block (clip chomping: one final line
// break) indented more than indent.
func (p *blockParser) literal(indent int) (*yaml.Node, error) {
	if p.i == len(p.lines) {
		return nil, errNotPlainBlock
	}
	block := indentOf(p.lines[p.i])
	if block <= indent {
		return nil, errNotPlainBlock
	}
	var b strings.Builder
	for p.i < len(p.lines) {
		line := p.lines[p.i]
		if strings.TrimSpace(line) == "" {
			return nil, errNotPlainBlock // blank lines: chomping rules, not read here
		}
		ind := indentOf(line)
		if ind < block {
			if ind > indent {
				return nil, errNotPlainBlock
			}
			break
		}
		b.WriteString(line[block:])
		b.WriteByte('\n')
		p.i++
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.LiteralStyle, Tag: "!!str", Value: b.String()}, nil
}

// splitKey splits "key: rest" or "key:" at the first colon that ends the
// key (followed by a space or the end of the line).
func splitKey(line string) (key, rest string, ok bool) {
	for i := 0; i < len(line); i++ {
		if line[i] != ':' {
			continue
		}
		switch {
		case i+1 == len(line):
			return line[:i], "", i > 0
		case line[i+1] == ' ':
			rest = strings.TrimRight(line[i+2:], " ")
			if strings.HasPrefix(rest, " ") {
				return "", "", false
			}
			return line[:i], rest, i > 0
		}
	}
	return "", "", false
}

// plainScalar is a plain scalar on one line, resolved by the YAML
// library's rules, or errNotPlainBlock when the text would be read as
// something else (an indicator, a key, a comment).
func plainScalar(text string) (*yaml.Node, error) {
	if text == "" || text != strings.TrimSpace(text) || strings.ContainsAny(text[:1], "-?:,[]{}#&*!|>'\"%@`") ||
		strings.Contains(text, ": ") || strings.HasSuffix(text, ":") {
		return nil, errNotPlainBlock
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: text}
	n.Tag = n.ShortTag()
	return n, nil
}
