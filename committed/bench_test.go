package committed

import (
	"encoding/base64"
	"strings"
	"testing"
)

// realistic is a Secret file the size the sops YAML store writes for an
// RSA-2048 certificate with its chain: the data lines are most of it.
func realistic() []byte {
	enc := func(n int) string {
		return "ENC[AES256_GCM,data:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", n))) + ",iv:5Jk0Yc3mH2Jt1Y3H0xYq8w3eRkT2bq9nS7xW1e4r5aA=,tag:0123456789abcdefABCDEF==,type:str]"
	}
	var b strings.Builder
	b.WriteString(`apiVersion: v1
kind: Secret
metadata:
    name: web-tls
    namespace: shop
    labels:
        app.kubernetes.io/managed-by: certsync
        controller.cert-manager.io/fao: "true"
    annotations:
        cert-manager.io/alt-names: example.com,www.example.com
        cert-manager.io/certificate-name: web
        cert-manager.io/common-name: example.com
        cert-manager.io/issuer-group: cert-manager.io
        cert-manager.io/issuer-kind: ClusterIssuer
        cert-manager.io/issuer-name: letsencrypt
        certsync.io/certificate: shop/web
        certsync.io/issued-at: "2026-11-24T10:00:00Z"
        certsync.io/not-after: "2027-02-22T10:00:00Z"
        certsync.io/not-before: "2026-11-24T10:00:00Z"
        certsync.io/private-key: RSA-2048
        certsync.io/reason: no Secret committed
        certsync.io/serial: 04a1b2c3d4e5f60718293a4b5c6d7e8f9012
        certsync.io/source: certificates/web.yaml
        certsync.io/spec-hash: 9f86d081884c7d65
type: kubernetes.io/tls
data:
`)
	b.WriteString("    ca.crt: " + enc(1300) + "\n")
	b.WriteString("    tls.crt: " + enc(2600) + "\n")
	b.WriteString("    tls.key: " + enc(2300) + "\n")
	b.WriteString(`sops:
    age:
        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBmOXh0c2NkTnV5Y3l6bG1o
            Y0F3a2xnWXhFN0pPS0RBZ2JCa1pqQ2dTZlR3Cm1QQmZrR1BhTzJQaUR3Y1R6dVhp
            N1NzS0R3eFdJUzNyS1l0S2JjVlJxT2sKLS0tIFFhbDN1a0ZCOE5OY2Q2aE9mOTZm
            a2Y2SkNwQ0xHZkZxQnJqN2hRcTJ2ckkKs1aJ2Z3vM0h8nD5kC4w0zB+a9XwQ==
            -----END AGE ENCRYPTED FILE-----
    lastmodified: "2026-11-24T10:00:00Z"
    mac: ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]
    encrypted_regex: ^(data|stringData)$
    version: 3.13.3
`)
	return []byte(b.String())
}

func BenchmarkRead(b *testing.B) {
	content := realistic()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read("secrets/default/shop/web-tls.yaml", content); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadYAML is the fallback, for comparison.
func BenchmarkReadYAML(b *testing.B) {
	content := realistic()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseYAML(content); err != nil {
			b.Fatal(err)
		}
	}
}
