package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certsync/certsync/declared"
)

const reviewIssuer = `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: le
spec:
  acme:
    server: https://acme.example/directory
    privateKeySecretRef:
      name: le-account
    solvers:
    - http01:
        ingress: {}
`

const reviewSOPS = `creation_rules:
  - path_regex: ^(secrets|accounts)/.*\.yaml$
    encrypted_regex: ^(data|stringData)$
    age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
`

func reviewCert(name, extra string) string {
	return `apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: ` + name + `
  namespace: shop
spec:
  secretName: ` + name + `-tls
  dnsNames: [` + name + `.example.com]
  issuerRef: {name: le, kind: ClusterIssuer}
` + extra
}

// reviewRepo writes a repository folder from files (path → content).
func reviewRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		writeFile(t, filepath.Join(dir, p), c)
	}
	return dir
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(string) string { return "" }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidate(t *testing.T) {
	base := func(extra map[string]string) map[string]string {
		files := map[string]string{".sops.yaml": reviewSOPS, "issuers/le.yaml": reviewIssuer, "certs/web.yaml": reviewCert("web", "")}
		for p, c := range extra {
			files[p] = c
		}
		return files
	}
	tests := []struct {
		name  string
		files map[string]string
		want  []string // lines of the text output; empty: valid
	}{
		{name: "valid", files: base(nil)},
		{name: "unknown issuer", files: base(map[string]string{"certs/api.yaml": strings.Replace(reviewCert("api", ""), "name: le,", "name: nope,", 1)}),
			want: []string{"certs/api.yaml:1:1: Certificate shop/api: spec.issuerRef: unknown issuer: ClusterIssuer nope is not declared in the repository"}},
		{name: "wildcard through HTTP-01", files: base(map[string]string{"certs/wild.yaml": strings.Replace(reviewCert("wild", ""), "[wild.example.com]", `["*.example.com"]`, 1)}),
			want: []string{"certs/wild.yaml:1:1: Certificate shop/wild: spec.dnsNames: ClusterIssuer/le (issuers/le.yaml:1:1): no usable ACME solver: *.example.com: HTTP-01 cannot validate wildcard names"}},
		{name: "duplicate secretName", files: base(map[string]string{"certs/web2.yaml": strings.Replace(reviewCert("web2", ""), "secretName: web2-tls", "secretName: web-tls", 1)}),
			want: []string{"certs/web.yaml:1:1: Certificate shop/web: spec.secretName shop/web-tls is used by 2 Certificates", "certs/web2.yaml:1:1: Certificate shop/web2: spec.secretName shop/web-tls is used by 2 Certificates"}},
		{name: "unknown cluster", files: base(map[string]string{
			"certsync.yaml":  "apiVersion: certsync.io/v1alpha1\nkind: Settings\nclusters:\n- name: prod\n",
			"certs/web.yaml": strings.Replace(reviewCert("web", ""), "  namespace: shop\n", "  namespace: shop\n  annotations:\n    certsync.io/clusters: prdo\n", 1)}),
			want: []string{`certs/web.yaml:7:27: Certificate shop/web: certsync.io/clusters: cluster "prdo" is not declared in certsync.yaml (declared: prod)`}},
		{name: "a .sops.yaml that would leave keys in the clear", files: base(map[string]string{".sops.yaml": strings.Replace(reviewSOPS, "^(data|stringData)$", "^nothing$", 1)}),
			want: []string{".sops.yaml: shop/web would write secrets/default/shop/web-tls.yaml, which .sops.yaml cannot encrypt"}},
		{name: "refused by policy", files: base(map[string]string{
			"certsync.yaml": "apiVersion: certsync.io/v1alpha1\nkind: Settings\npolicy:\n- paths: [certs/]\n  names: [.shop.example.com]\n"}),
			want: []string{"certs/web.yaml:1:1: Certificate shop/web: refused by policy: certsync.yaml:4:3 (policy rule) does not allow the name web.example.com (allowed: .shop.example.com)"}},
		{name: "malformed YAML", files: base(map[string]string{"certs/bad.yaml": "kind: Certificate\n  : :\n"}),
			want: []string{"certs/bad.yaml:1: malformed YAML: did not find expected key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := reviewRepo(t, tt.files)
			code, out, errOut := runCLI("validate", dir)
			checkValidated(t, code, out, errOut, tt.want, "ok: 1 certificate valid")
		})
	}
}

func TestValidateFormats(t *testing.T) {
	// The unknown issuer is a problem of the whole Certificate: its
	// document's start, line 1 column 1. The misspelt field is at its key,
	// line 8 column 3 ("  dnsName: " in reviewCert's spec).
	dir := reviewRepo(t, map[string]string{".sops.yaml": reviewSOPS, "issuers/le.yaml": reviewIssuer,
		"certs/web.yaml": strings.Replace(reviewCert("web", ""), "name: le,", "name: nope,", 1),
		"certs/api.yaml": strings.Replace(reviewCert("api", ""), "  dnsNames:", "  dnsName:", 1)})
	code, out, _ := runCLI("validate", "-o", "json", dir)
	var reports []struct {
		Problems []finding `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &reports); code != 1 || err != nil || len(reports) != 1 || len(reports[0].Problems) != 2 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if p := reports[0].Problems[0]; p.File != "certs/api.yaml" || p.Line != 8 || p.Column != 3 || !strings.Contains(p.Message, "spec.dnsName: unknown field") {
		t.Errorf("finding %+v", p)
	}
	if p := reports[0].Problems[1]; p.File != "certs/web.yaml" || p.Line != 1 || p.Column != 1 || !strings.Contains(p.Message, "unknown issuer") {
		t.Errorf("finding %+v", p)
	}
	if !strings.Contains(out, `"column": 3`) {
		t.Errorf("-o json has no column field:\n%s", out)
	}
	code, out, _ = runCLI("validate", "-o", "yaml", dir)
	if code != 1 || !strings.Contains(out, "- column: 3\n    file: certs/api.yaml\n    line: 8\n") {
		t.Errorf("-o yaml: exit %d:\n%s", code, out)
	}
	code, out, _ = runCLI("validate", "-o", "github", dir)
	if code != 1 || !strings.HasPrefix(out, "::error file=certs/api.yaml,line=8,col=3,title=certsync::Certificate shop/api: spec.dnsName: unknown field") ||
		!strings.Contains(out, "\n::error file=certs/web.yaml,line=1,col=1,title=certsync::Certificate shop/web: spec.issuerRef: unknown issuer") {
		t.Errorf("-o github: exit %d:\n%s", code, out)
	}
	code, out, _ = runCLI("validate", dir)
	if code != 1 || !strings.HasPrefix(out, "certs/api.yaml:8:3: Certificate shop/api: spec.dnsName: unknown field") {
		t.Errorf("-o text: exit %d:\n%s", code, out)
	}
	if code, _, errOut := runCLI("validate", "-o", "xml", dir); code != 2 || !strings.Contains(errOut, "want text, json, yaml or github") {
		t.Fatalf("bad -o: exit %d %s", code, errOut)
	}
}

// TestFindings checks how each kind of problem becomes a finding and how
// a finding is written: file:line:col when both are known, the line alone
// when only it is (a YAML syntax error), the file alone, or nothing.
func TestFindings(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		want   finding
		text   string
		github string
	}{
		{"a declaration's problem", declared.Problem{Source: declared.Source{File: "certs/web.yaml", Line: 8, Column: 14}, Object: "Certificate shop/web", Err: errors.New("spec.dnsNames[0]: bad")},
			finding{File: "certs/web.yaml", Line: 8, Column: 14, Message: "Certificate shop/web: spec.dnsNames[0]: bad"},
			"certs/web.yaml:8:14: Certificate shop/web: spec.dnsNames[0]: bad",
			"::error file=certs/web.yaml,line=8,col=14,title=certsync::Certificate shop/web: spec.dnsNames[0]: bad"},
		{"a YAML syntax error: no column", declared.Problem{Source: declared.Source{File: "certs/web.yaml", Line: 7}, Err: errors.New("malformed YAML: x")},
			finding{File: "certs/web.yaml", Line: 7, Message: "malformed YAML: x"},
			"certs/web.yaml:7: malformed YAML: x",
			"::error file=certs/web.yaml,line=7,title=certsync::malformed YAML: x"},
		{"certsync.yaml's error, with a column", errors.New(`certsync.yaml:7:14: delivery[0].clusters: cluster "us" is not declared`),
			finding{File: "certsync.yaml", Line: 7, Column: 14, Message: `delivery[0].clusters: cluster "us" is not declared`},
			`certsync.yaml:7:14: delivery[0].clusters: cluster "us" is not declared`,
			`::error file=certsync.yaml,line=7,col=14,title=certsync::delivery[0].clusters: cluster "us" is not declared`},
		{"an error with a line only", errors.New("certsync.yaml:3: something"),
			finding{File: "certsync.yaml", Line: 3, Message: "something"},
			"certsync.yaml:3: something",
			"::error file=certsync.yaml,line=3,title=certsync::something"},
		{"a file alone", errors.New(".sops.yaml: cannot encrypt"),
			finding{File: ".sops.yaml", Message: "cannot encrypt"},
			".sops.yaml: cannot encrypt",
			"::error file=.sops.yaml,title=certsync::cannot encrypt"},
		{"no place", errors.New("no repository"),
			finding{Message: "no repository"},
			"no repository",
			"::error title=certsync::no repository"},
		{"a path with a comma, a message with a newline", declared.Problem{Source: declared.Source{File: "certs/a,b.yaml", Line: 1, Column: 1}, Err: errors.New("two\nlines: 100%")},
			finding{File: "certs/a,b.yaml", Line: 1, Column: 1, Message: "two\nlines: 100%"},
			"certs/a,b.yaml:1:1: two\nlines: 100%",
			"::error file=certs/a%2Cb.yaml,line=1,col=1,title=certsync::two%0Alines: 100%25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := findingOf(tt.err)
			if f != tt.want {
				t.Errorf("findingOf = %+v, want %+v", f, tt.want)
			}
			if got := f.String(); got != tt.text {
				t.Errorf("String() = %q, want %q", got, tt.text)
			}
			if got := f.github(); got != tt.github {
				t.Errorf("github() = %q, want %q", got, tt.github)
			}
		})
	}
}

func TestPlanForPullRequests(t *testing.T) {
	settings := "apiVersion: certsync.io/v1alpha1\nkind: Settings\nclusters:\n- name: eu\n- name: us\ndelivery:\n- paths: [certs/]\n  clusters: [all]\n"
	dir := reviewRepo(t, map[string]string{".sops.yaml": reviewSOPS, "issuers/le.yaml": reviewIssuer, "certsync.yaml": settings,
		"certs/web.yaml": reviewCert("web", ""), "certs/api.yaml": reviewCert("api", "")})
	code, out, errOut := runCLI("plan", "-o", "markdown", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"### certsync plan", "**2 to issue**",
		"| Issue | shop/web (`certs/web.yaml:1:1`) | `secrets/eu/shop/web-tls.yaml` and 1 more cluster | no Secret committed |"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("plan", "-o", "json", dir)
	var plan struct {
		Actions []planAction `json:"actions"`
	}
	if err := json.Unmarshal([]byte(out), &plan); code != 0 || err != nil || len(plan.Actions) != 2 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if a := plan.Actions[0]; a.Kind != "Issue" || a.Certificate != "shop/api" || len(a.Copies) != 1 || a.Copies[0] != "secrets/us/shop/api-tls.yaml" {
		t.Fatalf("action %+v", a)
	}
	// A symbolic link is not followed: the repository is data.
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "certs", "passwd.yaml")); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI("validate", dir); code != 0 || strings.Contains(out+errOut, "root:") {
		t.Fatalf("symlink: exit %d\n%s\n%s", code, out, errOut)
	}
}

// checkValidated checks validate's result: exit 0 and okText when want is
// empty, else exit 1 and every wanted line in the output.
func checkValidated(t *testing.T, code int, out, errOut string, want []string, okText string) {
	t.Helper()
	if len(want) == 0 {
		if code != 0 || !strings.Contains(out, okText) {
			t.Fatalf("exit %d, want 0 (a valid repository)\n%s%s", code, out, errOut)
		}
		return
	}
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
