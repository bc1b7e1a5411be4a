package blockyaml

import (
	"testing"

	"github.com/certsync/certsync/internal/benchdata"
)

// benchManifests are n Certificates as the scale benchmarks write them
// (cmd/certsync newScaleRepo), one file each.
func benchManifests(n int) [][]byte {
	files := make([][]byte, n)
	for i := range files {
		_, _, _, files[i] = benchdata.Certificate(i, "")
	}
	return files
}

// BenchmarkParse10k reads 10,000 bench-style manifests into nodes: the
// fast path, and the library's Decoder as declared used it before.
func BenchmarkParse10k(b *testing.B) {
	files := benchManifests(10000)
	b.Run("blockyaml", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, f := range files {
				if _, err := ParseDocuments(f); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, f := range files {
				if _, err := libraryDocuments(f); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
