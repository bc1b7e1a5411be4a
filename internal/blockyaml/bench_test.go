package blockyaml

import (
	"fmt"
	"testing"
)

// benchManifests are n Certificates as the scale benchmarks write them
// (cmd/certsync newScaleRepo), one file each.
func benchManifests(n int) [][]byte {
	files := make([][]byte, n)
	for i := range files {
		ns, name := fmt.Sprintf("ns%d", i%50), fmt.Sprintf("c%d", i)
		files[i] = fmt.Appendf(nil, `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: %s, namespace: %s}
spec:
  secretName: %s-tls
  dnsNames: [%s.%s.bench.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: le, kind: ClusterIssuer}
`, name, ns, name, name, ns)
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
