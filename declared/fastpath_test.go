package declared

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/certsync/certsync/internal/blockyaml"
)

// parseFile takes blockyaml's fast path when it reads a file. These tests
// parse manifests both ways — the fast path and the YAML library alone —
// and require the same Set: Certificates, Issuers, Secrets and Problems
// with their file:line:column messages.

// parseWays is f parsed through the library alone, and through the fast
// path (fastRead false when the fast path leaves f to the library).
func parseWays(f File) (library, fast Set, fastRead bool) {
	parseDocuments(&library, f, libraryDocuments(f.Content))
	docs, err := blockyaml.ParseDocuments(f.Content)
	if err != nil {
		return library, fast, false
	}
	parseDocuments(&fast, f, documentsOf(docs))
	return library, fast, true
}

// sameSet reports how two readings of the same files differ, "" if not.
func sameSet(library, fast Set) string {
	messages := func(s Set) string {
		var b strings.Builder
		for _, p := range s.Problems {
			fmt.Fprintln(&b, p.Error())
		}
		return b.String()
	}
	if l, f := messages(library), messages(fast); l != f {
		return fmt.Sprintf("problems through the library:\n%sthrough the fast path:\n%s", l, f)
	}
	// The whole Set, the Problems' located errors (nodes included) too.
	if !reflect.DeepEqual(library, fast) {
		return fmt.Sprintf("through the library:\n%+v\nthrough the fast path:\n%+v", library, fast)
	}
	return ""
}

// checkBothWays parses files both ways, file by file and combined, and
// returns how many the fast path read.
func checkBothWays(t *testing.T, files []File) (fastRead int) {
	t.Helper()
	var libraryParts, fastParts []Set
	for _, f := range files {
		library, fast, read := parseWays(f)
		if !read {
			fast = library // the library's reading is what parseFile uses
		} else {
			fastRead++
			if diff := sameSet(library, fast); diff != "" {
				t.Errorf("%s:\n%s", f.Path, diff)
			}
		}
		if got := ParseFile(f); sameSet(fast, got) != "" {
			t.Errorf("%s: ParseFile differs from the reading of its chosen path:\n%s", f.Path, sameSet(fast, got))
		}
		libraryParts, fastParts = append(libraryParts, library), append(fastParts, fast)
	}
	if diff := sameSet(Combine(libraryParts), Combine(fastParts)); diff != "" {
		t.Errorf("combined:\n%s", diff)
	}
	return fastRead
}

// flood is 120 Certificates without secretName in one file: the problems
// stop at MaxProblemsPerFile.
func flood() string {
	var b strings.Builder
	for i := range MaxProblemsPerFile + 20 {
		fmt.Fprintf(&b, "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: c%d\n  namespace: shop\nspec:\n  dnsNames: [c%d.example.org]\n  issuerRef: {name: le, kind: ClusterIssuer}\n", i, i)
	}
	return b.String()
}

const flowIssuer = `apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: le}
spec:
  acme:
    server: https://acme.example/dir
    privateKeySecretRef: {name: le-account}
    solvers: [{http01: {}}]
`

func TestFastPathParsesAsTheLibrary(t *testing.T) {
	flowCert := func(name, extra string) string {
		return "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: " + name + ", namespace: shop}\nspec:\n  secretName: " + name +
			"-tls\n  dnsNames: [" + name + ".example.org]\n  issuerRef: {name: le, kind: ClusterIssuer}\n" + extra
	}
	tests := []struct {
		name  string
		files map[string]string
		// fast is whether the fast path must read every file: it must for
		// the shapes it is for, so the test would notice it giving up.
		fast bool
	}{
		{"bench-style", map[string]string{"c.yaml": flowCert("web", ""), "le.yaml": flowIssuer}, true},
		{"block style with comments", map[string]string{"c.yaml": "# The shop.\n\n# Its front.\n" + cert("web", "shop", "web-tls", "  # Names.\n  dnsNames:\n    # Apex.\n    - web.example.org\n")}, true},
		{"typo in a key", map[string]string{"c.yaml": cert("web", "shop", "web-tls", "  dnsName: [web.example.org]\n")}, true},
		{"typo in a flow key", map[string]string{"c.yaml": strings.Replace(flowCert("web", ""), "kind: ClusterIssuer", "knd: ClusterIssuer", 1)}, true},
		{"typo in metadata", map[string]string{"c.yaml": strings.Replace(flowCert("web", ""), "namespace:", "namepsace:", 1)}, true},
		{"CN not in dnsNames", map[string]string{"c.yaml": flowCert("web", "  commonName: other.example.org\n")}, true},
		{"wrong type in a flow", map[string]string{"c.yaml": strings.Replace(flowCert("web", ""), "dnsNames: [web.example.org]", "dnsNames: {a: b}", 1)}, true},
		{"wrong type, a string for a list", map[string]string{"c.yaml": cert("web", "shop", "web-tls", "  dnsNames: web.example.org\n")}, true},
		{"bad DNS name in a flow", map[string]string{"c.yaml": strings.Replace(flowCert("web", ""), "[web.example.org]", "[web.example.org, Bad_Name]", 1)}, true},
		{"duplicate documents", map[string]string{"c.yaml": flowCert("web", "") + "---\n" + flowCert("web", "")}, true},
		{"duplicate across files", map[string]string{"a.yaml": flowCert("web", ""), "b.yaml": flowCert("web", "")}, true},
		{"empty documents", map[string]string{"c.yaml": "---\n---\n\n---\n" + flowCert("web", "") + "---\n---\n" + flowCert("api", "")}, true},
		{"a --- at the end", map[string]string{"c.yaml": flowCert("web", "") + "---\n"}, true},
		{"nothing but blank lines", map[string]string{"c.yaml": "\n\n"}, true},
		{"kind typo", map[string]string{"c.yaml": strings.Replace(flowCert("web", ""), "kind: Certificate", "kind: Certficate", 1)}, true},
		{"apiVersion typo", map[string]string{"c.yaml": strings.Replace(flowCert("web", ""), "cert-manager.io/v1", "cert-manger.io/v1", 1)}, true},
		{"other kinds", map[string]string{"d.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 2\n"}, true},
		{"a List", map[string]string{"l.yaml": "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: cert-manager.io/v1\n    kind: Certificate\n    metadata: {name: x}\n"}, true},
		{"too many problems", map[string]string{"flood.yaml": flood()}, true},
		{"unknown issuer", map[string]string{"c.yaml": strings.Replace(flowCert("web", ""), "name: le,", "name: nope,", 1)}, true},
		{"plaintext Secret", map[string]string{"s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: shop}\ndata:\n  key: S0VZ\n"}, true},
		{"Ingress", map[string]string{"i.yaml": "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: blog\n  namespace: shop\n  annotations:\n    cert-manager.io/cluster-issuer: le\nspec:\n  tls:\n    - hosts: [blog.example.org]\n      secretName: blog-tls\n"}, true},
		// Left to the library, the whole file: the result is its reading.
		{"syntax error in the second document", map[string]string{"c.yaml": flowCert("web", "") + "---\nmetadata: [\n"}, false},
		{"a line comment", map[string]string{"c.yaml": flowCert("web", "  duration: 2160h # 90 days\n")}, false},
		{"an anchor", map[string]string{"c.yaml": flowCert("web", "  renewBefore: &r 720h\n")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []File
			for p, content := range tt.files {
				files = append(files, File{Path: p, Content: []byte(content)})
			}
			read := checkBothWays(t, files)
			if tt.fast && read != len(files) {
				t.Errorf("the fast path read %d of %d files", read, len(files))
			}
			if !tt.fast && read != 0 {
				t.Errorf("the fast path read a file it should leave to the library")
			}
		})
	}
}

// TestFastPathOnTheRepository parses every manifest of the repository's
// examples, deployment files and validate corpus both ways.
func TestFastPathOnTheRepository(t *testing.T) {
	root := ".."
	var files []File
	for _, dir := range []string{"examples", "deploy"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !IsManifestPath(filepath.ToSlash(p), nil) {
				return err
			}
			content, err := os.ReadFile(p)
			files = append(files, File{Path: filepath.ToSlash(p), Content: content})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	corpus, err := filepath.Glob(filepath.Join(root, "cmd", "certsync", "testdata", "validate", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range corpus {
		data, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		for name, content := range txtarFiles(string(data)) {
			if IsManifestPath(name, nil) {
				files = append(files, File{Path: filepath.Base(c) + "/" + name, Content: []byte(content)})
			}
		}
	}
	if len(corpus) < 100 || len(files) < 150 {
		t.Fatalf("found %d corpus cases and %d manifests: the repository's layout changed", len(corpus), len(files))
	}
	read := checkBothWays(t, files)
	t.Logf("%d of %d manifests read by the fast path", read, len(files))
	for _, f := range files {
		if strings.HasPrefix(f.Path, "../examples/") && (strings.Contains(f.Path, "/certificates/") || strings.Contains(f.Path, "/issuers/")) {
			if _, err := blockyaml.ParseDocuments(f.Content); err != nil {
				t.Errorf("%s: an example users copy is left to the library", f.Path)
			}
		}
	}
}

// txtarFiles reads the files of a validate corpus case: "-- name --" lines
// start a file; "want" is the expected output, not a file.
func txtarFiles(data string) map[string]string {
	files := map[string]string{}
	var name string
	var body strings.Builder
	flush := func() {
		if name != "" && name != "want" {
			files[name] = body.String()
		}
		body.Reset()
	}
	for line := range strings.Lines(data) {
		trimmed := strings.TrimRight(line, "\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) > 6 {
			flush()
			name = strings.TrimSpace(trimmed[3 : len(trimmed)-3])
			continue
		}
		if name != "" {
			body.WriteString(line)
		}
	}
	flush()
	return files
}
