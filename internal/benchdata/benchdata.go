// Package benchdata is the repository the scale benchmarks declare: one
// generator of the Certificate manifests, so that the benchmarks of
// different packages (cmd/certsync's passes, declared's and blockyaml's
// parsers) measure the same files.
package benchdata

import "fmt"

// Namespaces is how many namespaces the certificates are spread over.
const Namespaces = 50

// Certificate is bench certificate i: the file that declares it, its
// namespace and name, and its manifest (an ECDSA key, one DNS name, the
// ClusterIssuer le), in the flow style kubectl users write. extraSpec,
// when not empty, is one more spec field (e.g. "renewBefore: 80h").
func Certificate(i int, extraSpec string) (path, namespace, name string, manifest []byte) {
	namespace, name = fmt.Sprintf("ns%d", i%Namespaces), fmt.Sprintf("c%d", i)
	if extraSpec != "" {
		extraSpec = "  " + extraSpec + "\n"
	}
	manifest = fmt.Appendf(nil, `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: %s, namespace: %s}
spec:
  secretName: %s-tls
  dnsNames: [%s]
%s  privateKey: {algorithm: ECDSA}
  issuerRef: {name: le, kind: ClusterIssuer}
`, name, namespace, name, DNSName(i), extraSpec)
	return fmt.Sprintf("certificates/%s/%s.yaml", namespace, name), namespace, name, manifest
}

// DNSName is the DNS name of bench certificate i.
func DNSName(i int) string { return fmt.Sprintf("c%d.ns%d.bench.test", i, i%Namespaces) }
