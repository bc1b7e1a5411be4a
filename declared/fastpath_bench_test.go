package declared

import (
	"runtime"
	"testing"

	"github.com/certsync/certsync/internal/benchdata"
)

// benchFiles are n Certificates as the scale benchmarks write them
// (cmd/certsync newScaleRepo), one file each.
func benchFiles(n int) []File {
	files := make([]File, n)
	for i := range files {
		path, _, _, manifest := benchdata.Certificate(i, "")
		files[i] = File{Path: path, Content: manifest}
	}
	return files
}

// BenchmarkParseFile10k reads and validates 10,000 bench-style
// Certificates file by file, as a reconcile pass does: through parseFile
// (the fast path), and through the YAML library alone. retained-B is the
// heap the parsed Sets hold on to.
func BenchmarkParseFile10k(b *testing.B) {
	files := benchFiles(10000)
	for _, way := range []struct {
		name  string
		parse func(File) Set
	}{
		{"fast", ParseFile},
		{"library", func(f File) Set {
			var s Set
			parseDocuments(&s, f, libraryDocuments(f.Content))
			return s
		}},
	} {
		b.Run(way.name, func(b *testing.B) {
			b.ReportAllocs()
			sets := make([]Set, len(files))
			var before, after runtime.MemStats
			for b.Loop() {
				b.StopTimer()
				clear(sets)
				runtime.GC()
				runtime.ReadMemStats(&before)
				b.StartTimer()
				for i, f := range files {
					if sets[i] = way.parse(f); len(sets[i].Certificates) != 1 {
						b.Fatalf("%s: %v", f.Path, sets[i].Problems)
					}
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.StartTimer()
			}
			b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "retained-B")
		})
	}
}
