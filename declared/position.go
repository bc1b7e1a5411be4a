package declared

import (
	"bytes"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Where a problem points: the Line and Column of a yaml.v3 node, turned
// into Source's convention.
//
// yaml.v3 numbers lines from 1 and columns from 1 too, but counts a column
// in characters: in `o: [é, x]` the x is character 8 and byte 9. Go's
// compilers, go/token and the editors that read their output count bytes,
// so a node's column is converted with the file's own text. A column 1
// (every document's start, as a rule) needs no conversion; the file is
// indexed by line once, the first time another column is converted.

// Text is the content of one file, indexed by line on first use, to turn
// yaml.v3's positions into Source's. Other packages that read YAML files
// of the repository (certsync.yaml) use it to report positions the way
// declared does. It is not safe for concurrent use (the index is built on
// first use); each file has its own.
type Text struct {
	content []byte
	// starts[i] is the byte offset of line i+1; nil until first needed.
	starts []int
}

// NewText is the Text of a file's content.
func NewText(content []byte) *Text { return &Text{content: content} }

// pos is where n was written: its 1-based line and byte column.
func (t *Text) pos(n *yaml.Node) (line, column int) {
	if n == nil {
		return 0, 0
	}
	return n.Line, t.Column(n.Line, n.Column)
}

// Column converts the column yaml.v3 gives a node on line (1-based,
// counted in characters) to Source's byte column. A position the index
// cannot place is returned as yaml.v3 gave it rather than dropped.
func (t *Text) Column(line, column int) int {
	if column <= 1 || line < 1 {
		return column // nothing before it to count
	}
	if t.starts == nil {
		t.starts = lineStarts(t.content)
	}
	if line > len(t.starts) {
		return column
	}
	end := len(t.content)
	if line < len(t.starts) {
		end = t.starts[line]
	}
	rest := t.content[t.starts[line-1]:end]
	offset := 0
	for range column - 1 {
		if offset >= len(rest) {
			return column
		}
		_, size := utf8.DecodeRune(rest[offset:])
		offset += size
	}
	return offset + 1
}

// utf8BOM is skipped by yaml.v3 before it counts columns, as by editors.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// lineStarts lists the byte offset at which each line begins, breaking
// lines where yaml.v3 does (its read_line): CR LF, CR, LF, and the
// Unicode breaks NEL (U+0085), LS (U+2028) and PS (U+2029). Counting
// only LF would shift every column after a file saved with lone CRs.
func lineStarts(b []byte) []int {
	start := 0
	if bytes.HasPrefix(b, utf8BOM) {
		start = len(utf8BOM)
	}
	starts := []int{start}
	for i := start; i < len(b); {
		n := breakLen(b[i:])
		if n == 0 {
			i++
			continue
		}
		i += n
		starts = append(starts, i)
	}
	return starts
}

// breakLen is the length of the line break b starts with, 0 if none.
func breakLen(b []byte) int {
	switch {
	case b[0] == '\r' && len(b) > 1 && b[1] == '\n':
		return 2
	case b[0] == '\r' || b[0] == '\n':
		return 1
	case b[0] == 0xC2 && len(b) > 1 && b[1] == 0x85:
		return 2
	case b[0] == 0xE2 && len(b) > 2 && b[1] == 0x80 && (b[2] == 0xA8 || b[2] == 0xA9):
		return 3
	}
	return 0
}
