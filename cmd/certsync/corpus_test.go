package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
)

// The validate corpus: testdata/validate/NN-short-name.txt, one case per
// file, in golang.org/x/tools/txtar's format (a comment, then files, each
// introduced by a "-- path --" line). A case holds the repository files it
// needs beyond corpusBase (a file of the same path replaces the base's)
// and a "-- want --" section: substrings of validate's text output, one
// per line, each of which must appear. A case without want lines must
// validate cleanly (exit 0). A want line names its place as validate
// prints it, file:line:col (1-based, the column in bytes), counted in the
// case's own file; a YAML syntax error names its line alone.

// corpusSOPS is the base .sops.yaml: everything certsync writes, and the
// credentials folder, have their data encrypted to one age recipient.
const corpusSOPS = `creation_rules:
  - path_regex: ^(secrets|accounts|credentials)/.*\.yaml$
    encrypted_regex: ^(data|stringData)$
    age: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
`

// corpusIssuer is the base ClusterIssuer le: HTTP-01 for every name but
// those under example.com, which are validated over DNS-01 (RFC 2136).
const corpusIssuer = `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: le
spec:
  acme:
    server: https://acme.example/directory
    email: ops@example.com
    privateKeySecretRef:
      name: le-account
    solvers:
    - http01:
        ingress: {}
    - selector:
        dnsZones: [example.com]
      dns01:
        rfc2136:
          nameserver: 192.0.2.53:53
          tsigKeyName: certsync
          tsigAlgorithm: HMACSHA256
          tsigSecretSecretRef: {name: tsig, key: secret}
`

// corpusBase is the repository every case starts from.
var corpusBase = map[string]string{
	".sops.yaml":      corpusSOPS,
	"issuers/le.yaml": corpusIssuer,
}

// corpusGenerated adds files too large to keep in testdata to the case of
// the same short name, the case's file name without its number ("file-too-large"
// for NN-file-too-large.txt, which holds the want lines and any other files).
var corpusGenerated = map[string]func(files map[string]string){
	// One byte over declared.MaxFileSize (1 MiB), refused unread.
	"file-too-large": func(files map[string]string) {
		const size = 1<<20 + 1
		doc := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: "
		files["big/huge.yaml"] = doc + strings.Repeat("x", size-len(doc))
	},
	// 101 dnsNames: one over Let's Encrypt's limit (declared.MaxNames).
	"too-many-dnsnames": func(files map[string]string) {
		var b strings.Builder
		b.WriteString("apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: many\n  namespace: shop\nspec:\n  secretName: many-tls\n  issuerRef: {name: le, kind: ClusterIssuer}\n  dnsNames:\n")
		for i := range 101 {
			fmt.Fprintf(&b, "  - h%d.example.org\n", i)
		}
		files["certs/many.yaml"] = b.String()
	},
	// spec.secretTemplate.annotations over the API server's 256 KiB.
	"secrettemplate-annotations-too-large": func(files map[string]string) {
		files["certs/big-annotations.yaml"] = "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  secretName: web-tls\n  dnsNames: [web.example.org]\n  issuerRef: {name: le, kind: ClusterIssuer}\n  secretTemplate:\n    annotations:\n      example.org/blob: " +
			strings.Repeat("y", 256<<10) + "\n"
	},
	// A credential and a real private key committed in plaintext: the key
	// is made here, never kept in testdata (no key is ever committed).
	"plaintext-secret-data": func(files map[string]string) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			panic(err)
		}
		key := strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "\n", "\n    ")
		files["credentials/do.yaml"] = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: do\n  namespace: cert-manager\ntype: Opaque\nstringData:\n  token: dop_v1_0123456789abcdef\n  tls.key: |\n    " + strings.TrimSpace(key) + "\n"
	},
	// 120 bad Certificates in one file: the first 100 are reported, then
	// one line says the rest is unread (declared.MaxProblemsPerFile).
	"too-many-problems-in-one-file": func(files map[string]string) {
		var b strings.Builder
		for i := range 120 {
			fmt.Fprintf(&b, "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: c%d\n  namespace: shop\nspec:\n  dnsNames: [c%d.example.org]\n  issuerRef: {name: le, kind: ClusterIssuer}\n", i, i)
		}
		files["certs/flood.yaml"] = b.String()
	},
}

// corpusCase is one parsed testdata/validate file.
type corpusCase struct {
	files map[string]string
	want  []string
}

// parseCorpusCase reads the txtar format: lines "-- name --" start a file;
// what comes before the first is a comment. The "want" section lists the
// expected output substrings, one per non-blank line.
func parseCorpusCase(data string) (corpusCase, error) {
	c := corpusCase{files: map[string]string{}}
	name, inFile := "", false
	var body strings.Builder
	flush := func() {
		if inFile {
			c.files[name] = body.String()
		}
		body.Reset()
	}
	for line := range strings.Lines(data) {
		trimmed := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) > 6 {
			flush()
			name, inFile = strings.TrimSpace(trimmed[3:len(trimmed)-3]), true
			if _, dup := c.files[name]; dup {
				return c, fmt.Errorf("file %s is listed twice", name)
			}
			continue
		}
		if inFile {
			body.WriteString(line)
		}
	}
	flush()
	if w, ok := c.files["want"]; ok {
		delete(c.files, "want")
		for l := range strings.Lines(w) {
			if l = strings.TrimSpace(l); l != "" {
				c.want = append(c.want, l)
			}
		}
	}
	for p := range c.files {
		if p == "" || path.IsAbs(p) || path.Clean(p) != p || strings.HasPrefix(p, "../") {
			return c, fmt.Errorf("file name %q is not a clean repository path", p)
		}
	}
	return c, nil
}

// runValidate runs `certsync validate dir`, turning a panic into a result.
func runValidate(dir string) (code int, stdout, stderr string, panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprintf("%v\n%s", r, debug.Stack())
		}
	}()
	code, stdout, stderr = runCLI("validate", dir)
	return code, stdout, stderr, ""
}

func TestValidateCorpus(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "validate", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	names := map[string]bool{}
	bad := 0
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".txt")
		_, short, ok := strings.Cut(name, "-")
		if !ok || strings.Trim(name[:len(name)-len(short)-1], "0123456789") != "" {
			t.Fatalf("%s: want a name such as 01-short-name.txt", p)
		}
		if names[short] {
			t.Fatalf("%s: another case is also named %s", p, short)
		}
		names[short] = true
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := parseCorpusCase(string(data))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(tc.want) > 0 {
			bad++
		}
		t.Run(name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range corpusBase {
				files[k] = v
			}
			for k, v := range tc.files {
				files[k] = v
			}
			if gen := corpusGenerated[short]; gen != nil {
				gen(files)
			}
			dir := reviewRepo(t, files)
			code, out, errOut, panicked := runValidate(dir)
			if panicked != "" {
				t.Fatalf("validate panicked: %s", panicked)
			}
			t.Logf("exit %d\n%s%s", code, out, errOut)
			if strings.Contains(out+errOut, "PRIVATE KEY") {
				t.Errorf("output quotes a private key:\n%s%s", out, errOut)
			}
			if strings.Contains(out+errOut, "goroutine ") || strings.Contains(out+errOut, "panic:") {
				t.Errorf("output shows a panic:\n%s%s", out, errOut)
			}
			checkValidated(t, code, out, errOut, tc.want, ": ok: ")
		})
	}
	for name := range corpusGenerated {
		if !names[name] {
			t.Errorf("corpusGenerated has %s, but testdata/validate has no NN-%s.txt", name, name)
		}
	}
	if bad < 60 {
		t.Errorf("the corpus has %d bad cases; want at least 60", bad)
	}
}

// TestValidateCorpusBase checks that the shared base alone is valid: every
// problem a case reports comes from its own files.
func TestValidateCorpusBase(t *testing.T) {
	code, out, errOut, panicked := runValidate(reviewRepo(t, corpusBase))
	if panicked != "" || code != 0 || !strings.Contains(out, "ok: 0 certificates valid") {
		t.Fatalf("exit %d %s\n%s%s", code, panicked, out, errOut)
	}
}
