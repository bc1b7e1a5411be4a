package blockyaml

import (
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// parser reads the block structure of the documents of one file, line by
// line. Lines and columns of nodes are 1-based, as the library's; columns
// count bytes, which are characters here (content lines are ASCII).
type parser struct {
	lines []string
	i     int // the next line
	end   int // the end of the current document
	ascii bool

	// The comment lines [from, to) read ahead of the next content line and
	// not yet given to a node, at column col; blankAfter when a blank line
	// parts them from that content line.
	comment struct {
		from, to, col int
		blankAfter    bool
	}

	// err is set by anything refused; the node being built is then thrown
	// away by document.
	err bool

	// nodes and children are where nodes and the Content of collections
	// are allocated, many at a time; stack holds the children of the
	// collections being read until each is complete.
	nodes    []yaml.Node
	children []*yaml.Node
	stack    []*yaml.Node
}

func (p *parser) fail() { p.err = true }

// node is a new node.
func (p *parser) node(kind yaml.Kind, tag, value string) *yaml.Node {
	if len(p.nodes) == cap(p.nodes) {
		p.nodes = make([]yaml.Node, 0, 16)
	}
	p.nodes = p.nodes[:len(p.nodes)+1]
	n := &p.nodes[len(p.nodes)-1]
	n.Kind, n.Tag, n.Value = kind, tag, value
	return n
}

// content is a copy of nodes, the children of a complete collection, of
// exactly their number: appending to one collection's Content never
// writes over another's.
func (p *parser) content(nodes []*yaml.Node) []*yaml.Node {
	if len(nodes) == 0 {
		return nil
	}
	if len(p.children)+len(nodes) > cap(p.children) {
		p.children = make([]*yaml.Node, 0, max(len(nodes), 32))
	}
	start := len(p.children)
	p.children = append(p.children, nodes...)
	return p.children[start:len(p.children):len(p.children)]
}

// push starts the children of a collection on the stack; pop ends them,
// returning them as the collection's Content.
func (p *parser) push() int { return len(p.stack) }

func (p *parser) pop(start int) []*yaml.Node {
	c := p.content(p.stack[start:])
	clear(p.stack[start:])
	p.stack = p.stack[:start]
	return c
}

// indentOf is the number of leading spaces of line.
func indentOf(line string) int {
	return len(line) - len(strings.TrimLeft(line, " "))
}

// next moves to the next content line of the document and returns its
// indentation, or -1 at the document's end. The comment lines it passes
// become the pending comment, given to the next key or item by
// headComment; a comment that would not end up there is refused.
func (p *parser) next() int {
	c := &p.comment
	for ; p.i < p.end; p.i++ {
		line := p.lines[p.i]
		ind := indentOf(line)
		switch {
		case ind == len(line):
			if c.to > c.from {
				c.blankAfter = true
			}
		case line[ind] == '#':
			if c.to > c.from && (c.blankAfter || ind != c.col) {
				// Two groups of comments, or one over several columns: the
				// library splits them between foot and head comments.
				p.fail()
				return -1
			}
			if !p.commentLines(p.i, p.i+1) {
				return -1
			}
			if c.to == c.from {
				c.from, c.col = p.i, ind
			}
			c.to = p.i + 1
		default:
			if p.err {
				return -1
			}
			return ind
		}
	}
	return -1
}

// pending reports a comment not given to any node yet.
func (p *parser) pending() bool { return p.comment.to > p.comment.from }

// headComment is the pending comment for a key or item at column col of
// the line just reached, "" if none. The library gives it to that node
// only when it is at the same column, with no blank line in between.
func (p *parser) headComment(col int) string {
	c := &p.comment
	if c.to == c.from {
		return ""
	}
	if c.blankAfter || c.col != col {
		p.fail()
		return ""
	}
	text := joinComment(p.lines[c.from:c.to], col)
	c.from, c.to, c.blankAfter = 0, 0, false
	return text
}

// joinComment is the text of comment lines whose '#' is at col, as the
// library keeps it: from the '#' to the end of each line, lines joined by
// line breaks. It is a copy, not a part of the file's text.
func joinComment(lines []string, col int) string {
	var b strings.Builder
	size := len(lines) - 1
	for _, l := range lines {
		size += len(l) - col
	}
	b.Grow(size)
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l[col:])
	}
	return b.String()
}

// commentLines checks that lines [from, to) hold what the library keeps
// in a comment verbatim: printable UTF-8, none of the characters YAML
// reads as line breaks or a byte order mark.
func (p *parser) commentLines(from, to int) bool {
	if p.ascii {
		return true
	}
	for _, line := range p.lines[from:to] {
		if !utf8.ValidString(line) {
			p.fail()
			return false
		}
		for _, r := range line {
			if r >= 0x80 && (r < 0xa0 || r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff) {
				p.fail()
				return false
			}
		}
	}
	return true
}

// contentLine is the content line the parser is at, or fails when it
// holds anything beyond ASCII (whose columns the library counts in
// characters).
func (p *parser) contentLine() string {
	line := p.lines[p.i]
	if !p.ascii {
		for i := 0; i < len(line); i++ {
			if line[i] >= 0x80 {
				p.fail()
				return ""
			}
		}
	}
	return line
}

// mapping reads the keys at exactly indent until a line less indented.
func (p *parser) mapping(indent int) *yaml.Node {
	m := p.node(yaml.MappingNode, "!!map", "")
	p.next()
	m.Line, m.Column = p.i+1, indent+1
	start := p.push()
	p.entries(indent)
	m.Content = p.pop(start)
	if len(m.Content) == 0 {
		p.fail()
	}
	return m
}

// entries reads the keys at exactly indent onto the stack until a line
// less indented.
func (p *parser) entries(indent int) {
	for !p.err {
		ind := p.next()
		if ind < indent {
			return
		}
		if ind > indent {
			p.fail()
			return
		}
		p.entry(indent)
	}
}

// entry reads the "key: value" (or "key:" and a nested block) of the line
// the parser is at onto the stack; the key is at column indent.
func (p *parser) entry(indent int) {
	head := p.headComment(indent)
	line := p.contentLine()
	if p.err {
		return
	}
	var k *yaml.Node
	key, rest, ok := splitKey(line[indent:])
	if line[indent] == '"' {
		// A quoted key, as sops writes keys the library would resolve to
		// something else ("on"); its colon comes after the closing quote.
		k = p.quoted(line[indent:], p.i, indent)
		if k == nil {
			return
		}
		key = line[indent : indent+len(k.Value)+2]
		rest, ok = strings.CutPrefix(line[indent+len(key):], ":")
		ok = ok && (rest == "" || rest[0] == ' ')
		rest = strings.TrimRight(rest, " ")
		if rest != "" {
			rest, ok = rest[1:], ok && rest[1] != ' '
		}
	} else if ok {
		k = p.plain(key, p.i, indent)
	}
	if !ok {
		p.fail()
		return
	}
	k.HeadComment = head
	p.stack = append(p.stack, k)
	row := p.i
	p.i++
	var v *yaml.Node
	if rest == "" {
		v = p.nested(indent)
	} else {
		v = p.value(rest, row, indent+len(key)+2, indent)
	}
	p.stack = append(p.stack, v)
}

// nested reads the block under a key that has nothing after its colon
// (the key is at column indent): a mapping indented further, or a
// sequence indented further or at the key's column, as kubectl writes it.
func (p *parser) nested(indent int) *yaml.Node {
	ind := p.next()
	switch {
	case ind == indent && strings.HasPrefix(p.lines[p.i][ind:], "- "):
		return p.sequence(ind, true)
	case ind <= indent:
		p.fail() // a null value
		return nil
	case strings.HasPrefix(p.lines[p.i][ind:], "-"):
		return p.sequence(ind, false)
	}
	return p.mapping(ind)
}

// sequence reads "- item" lines at exactly indent. A sequence at its
// key's column (atKey) ends at a line there that is not an item: the next
// key.
func (p *parser) sequence(indent int, atKey bool) *yaml.Node {
	s := p.node(yaml.SequenceNode, "!!seq", "")
	p.next()
	s.Line, s.Column = p.i+1, indent+1
	start := p.push()
	p.items(indent, atKey)
	s.Content = p.pop(start)
	return s
}

// items reads the items of a sequence onto the stack.
func (p *parser) items(indent int, atKey bool) {
	for {
		ind := p.next()
		if ind < indent || atKey && ind == indent && !strings.HasPrefix(p.lines[p.i][ind:], "- ") {
			return
		}
		head := p.headComment(indent)
		line := p.contentLine()
		if p.err {
			return
		}
		line = line[indent:]
		if ind > indent || !strings.HasPrefix(line, "- ") {
			p.fail()
			return
		}
		item := line[2:]
		itemIndent := indent + 2
		if item == "" || item[0] == ' ' {
			p.fail()
			return
		}
		var v *yaml.Node
		if _, _, isKey := splitKey(item); isKey && item[0] != '[' && item[0] != '{' {
			// A mapping that starts on the dash's line: its first key is
			// at itemIndent and the others follow at that column.
			v = p.node(yaml.MappingNode, "!!map", "")
			v.Line, v.Column = p.i+1, itemIndent+1
			entries := p.push()
			p.entry(itemIndent)
			p.entries(itemIndent)
			v.Content = p.pop(entries)
		} else {
			row := p.i
			p.i++
			v = p.value(item, row, itemIndent, indent)
		}
		if p.err {
			return
		}
		v.HeadComment = head
		p.stack = append(p.stack, v)
	}
}

// value reads what is written after "key: " or "- " on line row from
// column col (0-based): a scalar, a flow collection, or a literal block
// that starts there; indent is the column of its key or dash.
func (p *parser) value(text string, row, col, indent int) *yaml.Node {
	var n *yaml.Node
	switch text[0] {
	case '|':
		if text != "|" {
			p.fail() // chomping or indentation indicators
			return nil
		}
		return p.literal(row, col, indent)
	case '"':
		n = p.quoted(text, row, col)
		if n != nil && len(n.Value)+2 != len(text) {
			p.fail() // something after the closing quote
		}
	case '[', '{':
		f := flow{p: p, text: text, row: row, col: col}
		n = f.collection(0)
		if f.pos != len(text) {
			p.fail() // something after the closing bracket
		}
	default:
		n = p.plain(text, row, col)
	}
	// A plain scalar may go on over more indented lines; that, or
	// anything else more indented than the key, is not read here.
	if ind := p.next(); ind > indent {
		p.fail()
	}
	return n
}

// literal reads the lines of a `|` block (clip chomping: one final line
// break) indented more than indent; its indicator is at col of line row.
func (p *parser) literal(row, col, indent int) *yaml.Node {
	if p.i == p.end {
		p.fail()
		return nil
	}
	block := indentOf(p.lines[p.i])
	if block <= indent {
		p.fail()
		return nil
	}
	var b strings.Builder
	for p.i < p.end {
		line := p.contentLine()
		if p.err {
			return nil
		}
		ind := indentOf(line)
		if ind == len(line) {
			p.fail() // blank lines: chomping rules, not read here
			return nil
		}
		if ind < block {
			if ind > indent {
				p.fail()
				return nil
			}
			break
		}
		b.WriteString(line[block:])
		b.WriteByte('\n')
		p.i++
	}
	n := p.node(yaml.ScalarNode, "!!str", b.String())
	n.Style = yaml.LiteralStyle
	n.Line, n.Column = row+1, col+1
	return n
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

// resolvable are the first characters of a plain scalar that the
// library's resolver may read as something other than a string: a number,
// a boolean, a null, a timestamp (its resolveTable). Any other is a
// string without asking it, which spares the resolver's allocation.
const resolvable = "+-0123456789yYnNtTfFoO~."

// plain is a plain scalar on one line at col (0-based) of line row,
// resolved by the YAML library's rules; it fails when the text would be
// read as something else (an indicator, a key, a comment, or "<<", a
// merge key the library tags !!merge).
func (p *parser) plain(text string, row, col int) *yaml.Node {
	if text == "" || text[0] == ' ' || text[len(text)-1] == ' ' ||
		strings.IndexByte("-?:,[]{}#&*!|>'\"%@`", text[0]) >= 0 ||
		strings.Contains(text, ": ") || strings.Contains(text, " #") || text[len(text)-1] == ':' ||
		text == "<<" {
		p.fail()
		return p.node(yaml.ScalarNode, "", "")
	}
	// A copy, as the library's: a value kept after parsing (a name in a
	// declaration) must not keep the whole file alive.
	n := p.node(yaml.ScalarNode, "", strings.Clone(text))
	if strings.IndexByte(resolvable, text[0]) >= 0 {
		n.Tag = n.ShortTag() // resolves an untagged plain scalar as the parser does
	} else {
		n.Tag = "!!str"
	}
	n.Line, n.Column = row+1, col+1
	return n
}

// quoted is the double-quoted scalar text starts with, at col of line
// row, when it has no escapes and ends on this line.
func (p *parser) quoted(text string, row, col int) *yaml.Node {
	end := strings.IndexAny(text[1:], `"\`)
	if end < 0 || text[1+end] != '"' {
		p.fail()
		return nil
	}
	n := p.node(yaml.ScalarNode, "!!str", strings.Clone(text[1:1+end]))
	n.Style = yaml.DoubleQuotedStyle
	n.Line, n.Column = row+1, col+1
	return n
}
