package blockyaml

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// Byte-level fuzzing rarely turns one valid manifest into another, so
// these tests also write files from a grammar of what blockyaml reads —
// with the near misses it must refuse mixed in — and compare both
// readings of each.

// generator writes random YAML files shaped like manifests.
type generator struct {
	r *rand.Rand
	b strings.Builder
	// dash, when set, is written instead of the next line's indentation:
	// "- " and the first key of a mapping on the dash's line.
	dash string
}

// keys, values and flow items: names, and what the library resolves to
// numbers, nulls, booleans and timestamps. A flow item holds no comma; the
// first keys are neither quoted nor hold a colon, for flow mappings.
var (
	keys      = []string{"a", "name", "cert-manager.io/common-name", "a b", "x#y", "1", "true", "~", "...", "a:b", "1:20", `"on"`, `"a: b #c"`, `""`} // no colon or quote in the first 9
	flowItems = []string{"a", "web.example.org", "c1-tls", "a  b", "x#y", "1", "0x1F", "1e3", ".5", "1_000", "true", "On",
		"no", "~", "null", "Null", "2026-11-25", ".inf", "NaN", "...", `"x"`, `"a, b: c # d"`, `""`, "spiffe://example.org/ns/a", "a:b", "1:20", "a?b", "a:"}
	scalars = append([]string{"a,b", "2001-12-14t21:59:43.10-05:00", "a[b]{c}"}, flowItems...)
)

// tricky are what must be refused, or are read differently in a flow
// collection: indicators, merge keys, comments, escapes, non-ASCII,
// colons and commas.
var tricky = []string{
	"-1", "<<", "---x", "[x]", "{x}", "a #b", "-", "?x", "*x", "&x", "!x", "%x", "@x", "`x", "'x'",
	`"\n"`, "|", ">", "é", "a:b", "a,b", `"x"`,
}

func (g *generator) pick(list []string) string { return list[g.r.IntN(len(list))] }

// scalar is one of list, now and then one of tricky.
func (g *generator) scalar(list []string) string {
	if g.chance(3) {
		return g.pick(tricky)
	}
	return g.pick(list)
}

func (g *generator) chance(percent int) bool { return g.r.IntN(100) < percent }

// usually is list[0] nine times in ten, else any of list.
func (g *generator) usually(list []string) string {
	if g.chance(90) {
		return list[0]
	}
	return g.pick(list)
}

func (g *generator) line(indent int, text string) {
	if g.dash != "" {
		g.b.WriteString(g.dash)
		g.dash = ""
	} else {
		g.b.WriteString(strings.Repeat(" ", indent))
	}
	g.b.WriteString(text)
	if g.chance(2) {
		g.b.WriteString(g.pick([]string{" ", " # c", "\t", "\r"}))
	}
	g.b.WriteByte('\n')
}

// gap writes what may come between two entries: blank lines, comments
// (now and then at another column, or in two groups).
func (g *generator) gap(indent int) {
	for g.chance(15) {
		g.b.WriteString("\n")
	}
	for g.chance(25) {
		col := indent
		if g.chance(3) {
			col = g.r.IntN(indent + 3)
		}
		g.line(col, g.pick([]string{"#", "# c", "#  spaced  ", "# é — 漢字", "# - old.example.org", "#x: y"}))
	}
	if g.chance(5) {
		g.b.WriteString("\n")
	}
}

func (g *generator) file() string {
	g.b.Reset()
	if g.chance(20) {
		g.line(0, "# head")
		g.b.WriteString("\n")
	}
	for doc := range 1 + g.r.IntN(3) {
		if doc > 0 || g.chance(30) {
			g.b.WriteString("---\n")
		}
		if g.chance(10) {
			continue // an empty document
		}
		g.mapping(0, 0)
	}
	if g.chance(10) {
		g.b.WriteString("---\n")
	}
	if g.chance(5) {
		g.line(0, "# foot")
	}
	return g.b.String()
}

func (g *generator) mapping(indent, depth int) {
	for range 1 + g.r.IntN(3) {
		g.gap(indent)
		g.entry(indent, depth, g.scalar(keys))
	}
}

// entry writes "key: value" at indent, the value of any kind.
func (g *generator) entry(indent, depth int, key string) {
	step := 2 + 2*g.r.IntN(2)
	switch g.valueKind(depth) {
	case 0:
		g.line(indent, key+": "+g.scalar(scalars))
	case 1:
		g.line(indent, key+": "+g.flow(0))
	case 2:
		g.line(indent, key+":")
		g.mapping(indent+step, depth+1)
	case 3:
		g.line(indent, key+":")
		at := indent + step
		if g.chance(30) {
			at = indent // as kubectl writes it
		}
		g.sequence(at, depth+1)
	case 4:
		g.line(indent, key+": |")
		g.literal(indent + step)
	}
}

func (g *generator) valueKind(depth int) int {
	if depth >= 3 {
		return g.r.IntN(2)
	}
	return g.r.IntN(5)
}

func (g *generator) sequence(indent, depth int) {
	for range 1 + g.r.IntN(3) {
		g.gap(indent)
		switch g.valueKind(depth) {
		case 0:
			g.line(indent, "- "+g.scalar(scalars))
		case 1:
			g.line(indent, "- "+g.flow(0))
		case 2, 3:
			// A mapping that starts on the dash's line.
			g.dash = strings.Repeat(" ", indent) + "- "
			g.entry(indent+2, depth+1, g.scalar(keys))
			if g.chance(50) {
				g.mapping(indent+2, depth+1)
			}
		case 4:
			g.line(indent, "- |")
			g.literal(indent + 2)
		}
	}
}

func (g *generator) literal(indent int) {
	for i := range 1 + g.r.IntN(3) {
		extra := 0
		if i > 0 && g.chance(20) {
			extra = 2
		}
		g.line(indent+extra, g.pick([]string{"line", "# not a comment", "a: b", "- x", "x  y"}))
	}
}

// flow is a flow collection on one line, nested now and then.
func (g *generator) flow(depth int) string {
	var b strings.Builder
	open, end := "[", "]"
	mapping := g.chance(50)
	if mapping {
		open, end = "{", "}"
	}
	b.WriteString(open + g.usually([]string{"", " "}))
	for i := range g.r.IntN(4) {
		if i > 0 {
			b.WriteString(g.usually([]string{", ", ",", " , ", ",  "}))
		}
		if mapping {
			b.WriteString(g.scalar(keys[:9]) + g.usually([]string{": ", ":  ", ":", " : "}))
		}
		if depth < 4 && g.chance(20) {
			b.WriteString(g.flow(depth + 1))
		} else {
			b.WriteString(g.scalar(flowItems))
		}
	}
	b.WriteString(g.usually([]string{"", " ", ","}) + end)
	return b.String()
}

// check compares both readings of in, and reports whether blockyaml read it.
func check(t *testing.T, in string) bool {
	t.Helper()
	got, err := ParseDocuments([]byte(in))
	if err != nil {
		if !errors.Is(err, ErrNotPlainBlock) {
			t.Fatalf("unexpected error %v", err)
		}
		return false
	}
	if err := sameAsLibrary([]byte(in), got); err != nil {
		t.Fatalf("%v\ninput: %q", err, in)
	}
	return true
}

// TestGeneratedFiles compares both readings of 20,000 generated files and
// checks that the grammar is not all near misses: a good share is read.
func TestGeneratedFiles(t *testing.T) {
	g := &generator{r: rand.New(rand.NewPCG(1, 2))}
	const n = 20000
	read := 0
	for range n {
		if check(t, g.file()) {
			read++
		}
	}
	t.Logf("%d of %d generated files read by blockyaml", read, n)
	if read < n/10 {
		t.Fatalf("only %d of %d generated files read: the grammar no longer exercises blockyaml", read, n)
	}
}

// FuzzGenerated lets the fuzzer choose the generator's random numbers.
func FuzzGenerated(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		g := &generator{r: rand.New(rand.NewPCG(a, b))}
		check(t, g.file())
	})
}
