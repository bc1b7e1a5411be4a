package declared

import (
	"strings"
	"testing"
)

// TestProblemPositions pins where problems point, as file:line:column,
// 1-based, the column in bytes: at the value a message is about, at the key
// of a field that is itself wrong, at the document's start for the whole
// object. Each column is counted in the line written next to it.
func TestProblemPositions(t *testing.T) {
	const head = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: web, namespace: shop}\nspec:\n" +
		"  secretName: web-tls\n  issuerRef: {name: letsencrypt, kind: ClusterIssuer}\n" // spec goes on at line 7
	ingress := func(annotations string) string {
		return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n" +
			"    cert-manager.io/cluster-issuer: letsencrypt\n" + annotations + // from line 8
			"spec:\n  tls:\n  - hosts: [web.example.com]\n    secretName: web-tls\n"
	}
	tests := []struct {
		name, doc string
		want      string // Source.String() of the only problem
		msg       string
	}{
		{"a block list item: its value",
			// line 9, "  - " is 4 bytes
			head + "  dnsNames:\n  - ok.example.com\n  - bad_name.example.com\n",
			"c.yaml:9:5", `spec.dnsNames[1]: "bad_name.example.com": not a valid DNS name`},
		{"a flow list item: its value",
			// "  dnsNames: [" is 13 bytes, "ok.example.com, " 16
			head + "  dnsNames: [ok.example.com, bad_name.example.com]\n",
			"c.yaml:7:30", `spec.dnsNames[1]: "bad_name.example.com"`},
		{"a nested map value",
			// "    algorithm: " is 15 bytes
			head + "  dnsNames: [web.example.com]\n  privateKey:\n    algorithm: DSA\n",
			"c.yaml:9:16", `spec.privateKey.algorithm: "DSA" is not one of RSA, ECDSA, Ed25519`},
		{"a misspelt key: the key",
			head + "  dnsNames: [web.example.com]\n  privateKey:\n    algoritm: ECDSA\n",
			"c.yaml:9:5", "spec.privateKey.algoritm: unknown field (did you mean algorithm?)"},
		{"a field that cannot be combined with another: its key",
			head + "  dnsNames: [web.example.com]\n  renewBeforePercentage: 30\n  renewBefore: 720h\n",
			"c.yaml:9:3", "spec.renewBefore: renewBefore and renewBeforePercentage are mutually exclusive"},
		{"a value of the wrong type: the value",
			// "  dnsNames: " is 12 bytes
			head + "  dnsNames: web.example.com\n",
			"c.yaml:7:13", "spec.dnsNames: must be a list, not a string"},
		{"a missing field: its parent's value",
			// spec's mapping starts with dnsNames, line 5 column 3
			"apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: web, namespace: shop}\nspec:\n" +
				"  dnsNames: [web.example.com]\n  issuerRef: {name: letsencrypt, kind: ClusterIssuer}\n",
			"c.yaml:5:3", "spec.secretName: is required"},
		{"the whole object, in the second document of a file: its start",
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + strings.Replace(head, "name: letsencrypt", "name: nope", 1) + "  dnsNames: [web.example.com]\n",
			"c.yaml:5:1", "spec.issuerRef: unknown issuer: ClusterIssuer nope is not declared"},
		{"a kind in the third document",
			// "kind: " is 6 bytes
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n" +
				"apiVersion: cert-manager.io/v1\nkind: Certficate\nmetadata: {name: web}\n",
			"c.yaml:10:7", "kind: Certficate: did you mean kind: Certificate?"},
		{"a kind merged from an anchor: where it is written",
			// "x: &base {kind: " is 16 bytes
			"x: &base {kind: Certficate}\napiVersion: cert-manager.io/v1\n<<: *base\nmetadata: {name: web}\n",
			"c.yaml:1:17", "kind: Certficate: did you mean kind: Certificate?"},
		{"a file with CRLF line ends",
			"apiVersion: cert-manager.io/v1\r\nkind: Certficate\r\nmetadata: {name: web}\r\n",
			"c.yaml:2:7", "kind: Certficate: did you mean kind: Certificate?"},
		{"non-ASCII before the column: bytes, not characters",
			// "    annotations: {note: " is 24 bytes and "\"café\", " 9 (8
			// characters): byte 34, character 33
			head + "  dnsNames: [web.example.com]\n  secretTemplate:\n    annotations: {note: \"café\", \"bad key!\": x}\n",
			"c.yaml:9:34", `spec.secretTemplate.annotations["bad key!"]: "bad key!" is not a valid annotation key`},
		{"a YAML syntax error: the line alone",
			head + "  dnsNames: [\"web.example.com]\n",
			"c.yaml:7", "malformed YAML: found unexpected end of stream"},
		{"an Ingress annotation's value, for the ingress-shim",
			// "    cert-manager.io/duration: " is 30 bytes
			ingress("    cert-manager.io/duration: 90 days\n"),
			"c.yaml:8:31", `Ingress shop/web: metadata.annotations["cert-manager.io/duration"]: "90 days" is not a duration`},
		{"an Ingress annotation that is misspelt: its key",
			ingress("    cert-manager.io/durration: 2160h\n"),
			"c.yaml:8:5", `metadata.annotations["cert-manager.io/durration"]: is not one of cert-manager's annotations: did you mean cert-manager.io/duration?`},
		{"an Ingress annotation that cannot be combined: its key",
			ingress("    cert-manager.io/issuer-kind: ClusterIssuer\n"),
			"c.yaml:8:5", `metadata.annotations["cert-manager.io/issuer-kind"]: cannot be combined with cert-manager.io/cluster-issuer`},
		{"inside an Ingress annotation's JSON: the annotation's value",
			// "    cert-manager.io/secret-template: " is 37 bytes
			ingress("    cert-manager.io/secret-template: '{\"labels\": {\"app.kubernetes.io/managed-by\": \"me\"}}'\n"),
			"c.yaml:8:38", `metadata.annotations["cert-manager.io/secret-template"]: "app.kubernetes.io/managed-by" is reserved`},
		{"an Ingress's TLS host: the list item",
			// "  - hosts: [" is 12 bytes and "web.example.com, " 17
			strings.Replace(ingress(""), "[web.example.com]", "[web.example.com, Web.Example.com]", 1),
			"c.yaml:10:30", `spec.tls[0].hosts[1]: "Web.Example.com": must be lower case`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := parseWithBase(t, File{Path: "c.yaml", Content: []byte(tt.doc)})
			wantOneProblem(t, set, tt.want, tt.msg)
		})
	}
}

// TestTextColumn converts yaml.v3's columns (characters) to bytes, with
// lines broken where yaml.v3 breaks them.
func TestTextColumn(t *testing.T) {
	tests := []struct {
		name         string
		content      string
		line, column int // as yaml.v3 reports them
		want         int
	}{
		{"ASCII", "a: 1\nb: [x, yy]\n", 2, 8, 8},
		{"two-byte characters before it", "a: [é, ü, x]\n", 1, 11, 13},
		{"a three-byte character before it", "a: [€, x]\n", 1, 8, 10},
		{"a character after it changes nothing", "a: [x, é]\n", 1, 5, 5},
		{"column 1", "é: x\n", 1, 1, 1},
		{"CRLF", "a: é\r\nb: [é, x]\r\n", 2, 8, 9},
		{"a lone CR breaks a line", "a: é\rb: [é, x]\r", 2, 8, 9},
		{"NEL breaks a line", "# c\u0085b: [é, x]\n", 2, 8, 9},
		{"LS breaks a line", "# c\u2028b: [é, x]\n", 2, 8, 9},
		{"a BOM is not counted", "\ufeffa: [é, x]\n", 1, 8, 9},
		{"past the last line: as given", "a: 1\n", 7, 3, 3},
		{"past the end of the line: as given", "a: é\nb: 1\n", 1, 9, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewText([]byte(tt.content)).Column(tt.line, tt.column); got != tt.want {
				t.Errorf("Column(line %d, column %d) = %d, want %d", tt.line, tt.column, got, tt.want)
			}
		})
	}
}

func TestSourceString(t *testing.T) {
	for _, tt := range []struct {
		s    Source
		want string
	}{
		{Source{File: "a.yaml", Line: 3, Column: 7}, "a.yaml:3:7"},
		{Source{File: "a.yaml", Line: 3}, "a.yaml:3"},
		{Source{File: "a.yaml"}, "a.yaml"},
	} {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.s, got, tt.want)
		}
	}
}
