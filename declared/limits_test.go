package declared

import (
	"fmt"
	"strings"
	"testing"
)

// namesFile is a Certificate with n generated dnsNames: the key on line
// 11, one name per line after it.
func namesFile(n int) []byte {
	var b strings.Builder
	b.WriteString(cert("many", "a", "many-tls", "  dnsNames:\n"))
	for i := range n {
		fmt.Fprintf(&b, "  - n%d.example.com\n", i)
	}
	return []byte(b.String())
}

func TestFileSizeLimit(t *testing.T) {
	huge := namesFile(900_000)
	set := parseWithBase(t, File{Path: "huge.yaml", Content: huge})
	wantOneProblem(t, set, "huge.yaml:1", fmt.Sprintf("file is %d bytes; certsync reads manifests up to 1 MiB", len(huge)))
	if hasCertificate(set, "a/many") {
		t.Error("the huge file was read")
	}

	// A file of exactly MaxFileSize bytes is read.
	doc := cert("padded", "a", "padded-tls", "  dnsNames: [padded.example.com]\n")
	pad := "#" + strings.Repeat(".", MaxFileSize-len(doc)-2) + "\n"
	set = parseWithBase(t, File{Path: "max.yaml", Content: []byte(pad + doc)})
	if len(pad+doc) != MaxFileSize || len(set.Problems) != 0 || !hasCertificate(set, "a/padded") {
		t.Errorf("a %d-byte file was not read: %v", len(pad+doc), set.Problems)
	}
}

func TestProblemsPerFileLimit(t *testing.T) {
	doc := "apiVersion: cert-manager.io/v1\nkind: Certficate\n---\n"
	set := parseWithBase(t, File{Path: "typos.yaml", Content: []byte(strings.Repeat(doc, 1000))})
	if len(set.Problems) != MaxProblemsPerFile+1 {
		t.Fatalf("got %d problems, want %d", len(set.Problems), MaxProblemsPerFile+1)
	}
	last := set.Problems[MaxProblemsPerFile]
	if last.Source.String() != "typos.yaml:302:7" || !strings.Contains(last.Error(), "more than 100 problems in this file") {
		t.Errorf("last problem = %v", last)
	}
}

func TestNameCountLimits(t *testing.T) {
	limited := strings.Replace(issuerYAML, "name: letsencrypt\n", "name: le-tlsserver\n", 1)
	limited = strings.Replace(limited, "    email: ops@example.com\n", "    email: ops@example.com\n    profile: tlsserver\n", 1)
	tests := []struct {
		name   string
		issuer string // issuerRef name
		names  int
		want   string // "" when accepted, else "file:line:column: message"
	}{
		{"100 names", "letsencrypt", 100, ""},
		{"101 names", "letsencrypt", 101, "c.yaml:11:3: Certificate a/many: spec.dnsNames: has 101 names; a certificate may have at most 100"},
		{"25 names under tlsserver", "le-tlsserver", 25, ""},
		{"26 names under tlsserver", "le-tlsserver", 26, `c.yaml:1:1: Certificate a/many: spec.dnsNames has 26 names; ClusterIssuer/le-tlsserver orders with ACME profile "tlsserver", which allows at most 25`},
		{"26 names under the default profile", "letsencrypt", 26, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := strings.Replace(string(namesFile(tt.names)), "name: letsencrypt", "name: "+tt.issuer, 1)
			set := parseWithBase(t, File{Path: "limited.yaml", Content: []byte(limited)}, File{Path: "c.yaml", Content: []byte(c)})
			if tt.want == "" {
				if len(set.Problems) != 0 || !hasCertificate(set, "a/many") {
					t.Errorf("refused: %v", set.Problems)
				}
				return
			}
			if len(set.Problems) != 1 || !strings.HasPrefix(set.Problems[0].Error(), tt.want) {
				t.Errorf("problems = %v, want one starting %q", set.Problems, tt.want)
			}
		})
	}
}

func TestDNSNames(t *testing.T) {
	label := func(c string, n int) string { return strings.Repeat(c, n) }
	long := strings.Join([]string{label("a", 50), label("b", 50), label("c", 50), label("d", 50)}, ".")
	tests := []struct {
		name, dnsName string
		want          string // "" when accepted
	}{
		{"63-byte label", label("a", 63) + ".example.com", ""},
		{"64-byte label", label("a", 64) + ".example.com", "label 1 is 64 bytes long; a DNS label may be at most 63"},
		{"64-byte label further right", "www." + label("a", 64) + ".com", "label 2 is 64 bytes long"},
		{"253-byte name", long + "." + label("e", 37) + ".example.com", ""},
		{"254-byte name", long + "." + label("e", 38) + ".example.com", "is 254 bytes long; a DNS name may be at most 253"},
		{"IPv4 address", "10.0.0.1", "is an IP address: IP addresses belong in spec.ipAddresses"},
		{"IPv6 address", "::1", "is an IP address: IP addresses belong in spec.ipAddresses"},
		{"bracketed IPv6 address", "[2001:db8::1]", "is an IP address"},
		{"trailing dot", "www.example.com.", "must not end with a dot"},
		{"empty label", "www..example.com", "has an empty label"},
		{"leading dot", ".example.com", "has an empty label"},
		{"upper case", "WWW.example.com", "must be lower case"},
		{"wildcard", "*.example.com", ""},
		{"wildcard in the middle", "a.*.example.com", "a wildcard may only be the whole leftmost label"},
		{"single label", "localhost", "at least two labels"},
		{"underscore", "bad_name.example.com", "not a valid DNS name"},
		{"huge name is not quoted whole", label("x", 5000) + ".com", "…\": is 5004 bytes long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cert("x", "a", "x-tls", fmt.Sprintf("  dnsNames:\n  - ok.example.com\n  - %q\n", tt.dnsName))
			set := parseWithBase(t, File{Path: "c.yaml", Content: []byte(c)})
			if tt.want == "" {
				if len(set.Problems) != 0 {
					t.Errorf("refused: %v", set.Problems)
				}
				return
			}
			wantOneProblem(t, set, "c.yaml:13:5", "spec.dnsNames[1]", tt.want)
			if n := len(set.Problems[0].Error()); n > 500 {
				t.Errorf("the error is %d bytes long", n)
			}
		})
	}
}

func TestCommonName(t *testing.T) {
	tests := []struct {
		cn, want string
	}{
		{"10.0.0.1", "spec.commonName: \"10.0.0.1\": is an IP address: IP addresses belong in spec.ipAddresses"},
		{"WWW.example.com", "must be lower case"},
		{"www.example.com.", "must not end with a dot"},
		{"a.*.example.com", "wildcard"},
	}
	for _, tt := range tests {
		t.Run(tt.cn, func(t *testing.T) {
			c := cert("x", "a", "x-tls", fmt.Sprintf("  commonName: %q\n  dnsNames: [ok.example.com]\n", tt.cn))
			set := parseWithBase(t, File{Path: "c.yaml", Content: []byte(c)})
			wantOneProblem(t, set, "c.yaml:11:15", tt.want)
		})
	}
	for cn, want := range map[string]bool{
		"www.example.com": true, "Example.COM": true, "10.0.0.1": true, "::1": true,
		"My Service": false, "system:node:web-1": false, "localhost": false, "ACME Corp.": false,
	} {
		if got := looksLikeDNSName(cn); got != want {
			t.Errorf("looksLikeDNSName(%q) = %v", cn, got)
		}
	}
}

func TestSecretTemplate(t *testing.T) {
	tests := []struct {
		name, template string
		want           string // "file:line:column" and message; "" when accepted
		msg            string
	}{
		{"valid", "    labels: {team: shop}\n    annotations: {example.com/owner: shop, cert-manager.io/allow-direct-injection: \"true\"}\n", "", ""},
		{"annotations over 256 KiB", "    annotations:\n      example.com/big: " + strings.Repeat("x", 256<<10) + "\n",
			"c.yaml:13:5", "spec.secretTemplate.annotations: are 262159 bytes in total; the API server accepts at most 262144"},
		{"certsync annotation", "    annotations:\n      example.com/ok: x\n      certsync.io/serial: \"01\"\n",
			"c.yaml:15:7", `spec.secretTemplate.annotations["certsync.io/serial"]: "certsync.io/serial" is reserved`},
		{"cert-manager annotation", "    annotations:\n      cert-manager.io/issuer-name: other\n",
			"c.yaml:14:7", `"cert-manager.io/issuer-name" is reserved`},
		{"managed-by label", "    labels:\n      app.kubernetes.io/managed-by: me\n",
			"c.yaml:14:7", `"app.kubernetes.io/managed-by" is reserved`},
		{"cert-manager subdomain label", "    labels:\n      controller.cert-manager.io/fao: \"false\"\n",
			"c.yaml:14:7", `"controller.cert-manager.io/fao" is reserved`},
		{"invalid annotation key", "    annotations:\n      \"not a key\": x\n",
			"c.yaml:14:7", `"not a key" is not a valid annotation key`},
		{"invalid label value", "    labels:\n      team: \"has spaces\"\n",
			"c.yaml:14:13", `the value of "team", "has spaces", is not a valid label value`},
		{"label value too long", "    labels:\n      team: " + strings.Repeat("x", 64) + "\n",
			"c.yaml:14:13", "must be no more than 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cert("x", "a", "x-tls", "  dnsNames: [x.example.com]\n  secretTemplate:\n"+tt.template)
			set := parseWithBase(t, File{Path: "c.yaml", Content: []byte(c)})
			if tt.want == "" {
				if len(set.Problems) != 0 || !hasCertificate(set, "a/x") {
					t.Errorf("refused: %v", set.Problems)
				}
				return
			}
			wantOneProblem(t, set, tt.want, tt.msg)
			if n := len(set.Problems[0].Error()); n > 600 {
				t.Errorf("the error is %d bytes long", n)
			}
		})
	}
}

// BenchmarkParseHugeFile shows the size cap costs the same whatever the
// size of the file it refuses: ns/op does not grow with the file.
func BenchmarkParseHugeFile(b *testing.B) {
	for _, names := range []int{50_000, 900_000, 2_000_000} {
		f := File{Path: "huge.yaml", Content: namesFile(names)}
		b.Run(fmt.Sprintf("%dKiB", len(f.Content)>>10), func(b *testing.B) {
			for b.Loop() {
				if set := ParseFile(f); len(set.Problems) != 1 {
					b.Fatalf("not refused: %v", set.Problems)
				}
			}
		})
	}
}
