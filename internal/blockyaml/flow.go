package blockyaml

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxFlowDepth bounds how deep flow collections nest (`[{a: {}}]` is 3).
// Manifests nest two or three; deeper is left to the library rather than
// recursing on whatever a line holds.
const maxFlowDepth = 4

// flow reads a flow collection that opens and closes on one line: text is
// the rest of line row from column col (0-based), pos the next byte.
type flow struct {
	p    *parser
	text string
	row  int
	col  int
	pos  int
}

func (f *flow) spaces() {
	for f.pos < len(f.text) && f.text[f.pos] == ' ' {
		f.pos++
	}
}

// at is the byte at pos, 0 at the end of the line.
func (f *flow) at() byte {
	if f.pos < len(f.text) {
		return f.text[f.pos]
	}
	return 0
}

// collection reads the `[...]` or `{...}` that starts at pos. It returns a
// node even when it fails (p.err), so callers need not check for nil.
func (f *flow) collection(depth int) *yaml.Node {
	open := f.at()
	kind, tag, closing := yaml.SequenceNode, "!!seq", byte(']')
	if open == '{' {
		kind, tag, closing = yaml.MappingNode, "!!map", '}'
	}
	n := f.p.node(kind, tag, "")
	n.Style = yaml.FlowStyle
	n.Line, n.Column = f.row+1, f.col+f.pos+1
	if depth == maxFlowDepth {
		f.p.fail()
		return n
	}
	start := f.p.push()
	f.items(kind == yaml.MappingNode, closing, depth)
	n.Content = f.p.pop(start)
	return n
}

// items reads the items of a collection, or the keys and values of a
// mapping, onto the stack, and its closing bracket.
func (f *flow) items(mapping bool, closing byte, depth int) {
	f.pos++
	f.spaces()
	if f.at() == closing {
		f.pos++
		return
	}
	for !f.p.err {
		if mapping {
			f.p.stack = append(f.p.stack, f.key())
			if f.p.err {
				return
			}
		}
		f.p.stack = append(f.p.stack, f.item(depth))
		f.spaces()
		switch f.at() {
		case ',':
			f.pos++
			f.spaces()
			if f.at() == closing {
				f.p.fail() // a trailing comma
			}
		case closing:
			f.pos++
			return
		default:
			f.p.fail()
		}
	}
}

// plainEnd moves pos to where a plain scalar ends in a flow collection,
// as the library's scanner ends it: at a flow indicator (a question mark
// among them), or at a colon followed by a space, the end of the line or a
// flow indicator. A colon followed by anything else is part of the scalar
// (spiffe://example.org).
func (f *flow) plainEnd() {
	for ; f.pos < len(f.text); f.pos++ {
		switch f.text[f.pos] {
		case ',', '?', '[', ']', '{', '}':
			return
		case ':':
			if f.pos+1 == len(f.text) || strings.IndexByte(" ,?[]{}", f.text[f.pos+1]) >= 0 {
				return
			}
		}
	}
}

// key reads a plain key and the ": " after it.
func (f *flow) key() *yaml.Node {
	start := f.pos
	f.plainEnd()
	text := f.text[start:f.pos]
	if !strings.HasPrefix(f.text[f.pos:], ": ") {
		f.p.fail()
		return f.p.node(yaml.ScalarNode, "", "")
	}
	f.pos += 2
	f.spaces()
	return f.scalar(text, start)
}

// item reads a value of a flow mapping or an item of a flow sequence: a
// nested collection, a quoted scalar or a plain one (which must end at a
// comma or a closing bracket).
func (f *flow) item(depth int) *yaml.Node {
	switch f.at() {
	case '[', '{':
		return f.collection(depth + 1)
	case '"':
		n := f.p.quoted(f.text[f.pos:], f.row, f.col+f.pos)
		if n == nil {
			return f.p.node(yaml.ScalarNode, "", "")
		}
		f.pos += len(n.Value) + 2
		return n
	}
	start := f.pos
	f.plainEnd()
	if c := f.at(); c == ':' || c == '?' {
		f.p.fail() // a key in a sequence, or a mapping in a value
	}
	return f.scalar(strings.TrimRight(f.text[start:f.pos], " "), start)
}

// scalar is the plain scalar text found at start.
func (f *flow) scalar(text string, start int) *yaml.Node {
	if strings.IndexByte(text, '#') >= 0 {
		f.p.fail() // a comment, or near enough
	}
	return f.p.plain(text, f.row, f.col+start)
}
