// Package memstat tells where a Go process's memory goes: which modules'
// code and data of its executable are resident, and how its anonymous
// memory splits between live heap, heap the runtime keeps but does not
// use, stacks and runtime metadata.
//
// # Why two sides
//
// The kernel counts a process's resident set in two kinds of pages. File
// pages (RssFile) are the executable's code and read-only data paged in
// from disk as they are touched: clean, shared between processes running
// the same binary and dropped by the kernel under pressure at no cost. A
// Go binary's .text, .rodata and .gopclntab are all file pages, so every
// dependency linked in costs disk and, once touched, file pages, even if
// the program runs it once at start-up. Anonymous pages (RssAnon) are the
// Go heap, stacks and runtime metadata: private and dirty, never reclaimed
// without swap. A container's memory limit counts both, but the kernel
// reclaims file pages before it kills anything.
//
// # How
//
// Resident reads /proc/PID/maps and /proc/PID/pagemap, one bit per page
// (present, and file-backed or anonymous), for the executable's mappings,
// and attributes each resident page to the symbols it holds, symbol to
// package, package to module (the binary's own build information), so
// "k8s.io/client-go: 9 MB resident" means the pages holding client-go's
// functions and data. Pages holding no symbol (the pc-value tables Go
// keeps for stack walks, .gopclntab) are reported by section. Sizes is
// the same attribution over the file on disk. Anon reads the runtime's
// own accounting from a Prometheus scrape (the go_memstats_* series every
// client_golang registry with the Go collector exports).
package memstat

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"sort"
	"strings"
)

// StdModule is the module of the standard library's packages; Runtime
// data with no package (string literals, type descriptors of unnamed
// types) is reported as RuntimeData.
const (
	StdModule   = "std"
	RuntimeData = "(unnamed data)"
)

// span is one attributed address range of the image: a symbol's bytes or
// a section's bytes that no symbol covers.
type span struct {
	start, end uint64
	module     string
}

// image is an executable's address map: its spans sorted by address,
// covering every allocated section from end to end.
type image struct {
	spans []span
	// loads are the file-backed segments, to turn a mapping's file
	// offset into the address its symbols have (PIE or not).
	loads []*elf.Prog
}

// openImage reads path's symbols and build information.
func openImage(path string) (*image, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read executable %s: %w", path, err)
	}
	defer f.Close()
	modules, err := moduleIndex(path)
	if err != nil {
		return nil, err
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("read symbols of %s (a stripped binary has none): %w", path, err)
	}
	img := &image{}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			img.loads = append(img.loads, p)
		}
	}
	sort.Slice(syms, func(i, j int) bool { return syms[i].Value < syms[j].Value })
	for _, sec := range f.Sections {
		if sec.Flags&elf.SHF_ALLOC == 0 || sec.Size == 0 || sec.Addr == 0 {
			continue
		}
		img.addSection(sec, syms, modules)
	}
	sort.Slice(img.spans, func(i, j int) bool { return img.spans[i].start < img.spans[j].start })
	return img, nil
}

// addSection adds the spans of one section: each sized symbol inside it
// to its module, the gaps to the section.
func (img *image) addSection(sec *elf.Section, syms []elf.Symbol, modules *moduleIndexer) {
	lo, hi := sec.Addr, sec.Addr+sec.Size
	gap := "(section " + sec.Name + ")"
	next := lo
	first := sort.Search(len(syms), func(i int) bool { return syms[i].Value >= lo })
	for _, s := range syms[first:] {
		if s.Value >= hi {
			break
		}
		if s.Size == 0 || s.Value < next || elf.ST_TYPE(s.Info) == elf.STT_SECTION {
			continue // a marker, an alias or overlap: the bytes are counted once
		}
		if s.Value > next {
			img.spans = append(img.spans, span{next, s.Value, gap})
		}
		end := min(s.Value+s.Size, hi)
		img.spans = append(img.spans, span{s.Value, end, modules.module(s.Name)})
		next = end
	}
	if next < hi {
		img.spans = append(img.spans, span{next, hi, gap})
	}
}

// add adds to into[module] the bytes of [start, end) each module holds.
func (img *image) add(into map[string]int64, start, end uint64) {
	i := sort.Search(len(img.spans), func(i int) bool { return img.spans[i].end > start })
	for ; i < len(img.spans) && img.spans[i].start < end; i++ {
		s := img.spans[i]
		into[s.module] += int64(min(s.end, end) - max(s.start, start))
	}
}

// address is the image address of file offset off, as the segments map
// it, and whether a segment holds it.
func (img *image) address(off uint64) (uint64, bool) {
	for _, p := range img.loads {
		if off >= p.Off && off < p.Off+p.Filesz {
			return p.Vaddr + off - p.Off, true
		}
	}
	return 0, false
}

// moduleIndexer maps symbol names to the modules of the binary.
type moduleIndexer struct {
	main    string
	modules []string // longest first, so the first prefix match is the module
}

func moduleIndex(path string) (*moduleIndexer, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read build information of %s: %w", path, err)
	}
	m := &moduleIndexer{main: bi.Main.Path}
	m.modules = append(m.modules, bi.Main.Path)
	for _, d := range bi.Deps {
		m.modules = append(m.modules, d.Path)
	}
	sort.Slice(m.modules, func(i, j int) bool { return len(m.modules[i]) > len(m.modules[j]) })
	return m, nil
}

// module is the module whose package defined the symbol name.
func (m *moduleIndexer) module(name string) string {
	pkg := PackageOf(name)
	switch {
	case pkg == "":
		return RuntimeData
	case pkg == "main":
		return m.main
	}
	for _, mod := range m.modules {
		if pkg == mod || strings.HasPrefix(pkg, mod+"/") {
			return mod
		}
	}
	if first, _, _ := strings.Cut(pkg, "/"); !strings.Contains(first, ".") {
		return StdModule // runtime, net/http, vendor/golang.org/x/…, internal/…
	}
	return pkg // a package of no listed module: say which
}

// PackageOf is the import path of the package that defined a Go symbol
// ("k8s.io/api/core/v1.(*Secret).Marshal" → "k8s.io/api/core/v1"), of the
// type a type descriptor or itab describes, or "" for data of no package
// (string literals, descriptors of unnamed types).
func PackageOf(sym string) string {
	s := sym
	switch {
	case strings.HasPrefix(s, "type:"):
		s = strings.TrimPrefix(s, "type:")
		s = strings.TrimPrefix(s, ".eq.") // generated equality functions
	case strings.HasPrefix(s, "go:itab."):
		s = strings.TrimPrefix(s, "go:itab.")
	case strings.HasPrefix(s, "go:"), strings.HasPrefix(s, "_"), s == "":
		return ""
	}
	// Composite types name their element's package.
	for {
		t := strings.TrimLeft(s, "*[]0123456789")
		if rest, ok := strings.CutPrefix(t, "map["); ok {
			t = mapValue(rest)
		}
		if rest, ok := strings.CutPrefix(t, "chan "); ok {
			t = rest
		}
		if t == s {
			break
		}
		s = t
	}
	if strings.HasPrefix(s, "func(") || strings.HasPrefix(s, "struct") || strings.HasPrefix(s, "interface") || strings.HasPrefix(s, "noalg.") {
		return ""
	}
	if end := strings.IndexAny(s, "[(,"); end >= 0 {
		s = s[:end]
	}
	slash := strings.LastIndexByte(s, '/')
	dot := strings.IndexByte(s[slash+1:], '.')
	if dot < 0 {
		return ""
	}
	// The linker escapes dots in a path's last element (gopkg.in/yaml.v3
	// is spelt gopkg.in/yaml%2ev3).
	return strings.ReplaceAll(s[:slash+1+dot], "%2e", ".")
}

// mapValue is the value type of a map type written from after its "map[":
// what follows the bracket closing the key type.
func mapValue(s string) string {
	depth := 1
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			if depth--; depth == 0 {
				return s[i+1:]
			}
		}
	}
	return s
}
