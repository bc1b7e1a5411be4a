package blockyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// libraryDocuments is the reference: the documents yaml.Decoder gives.
func libraryDocuments(in []byte) ([]*yaml.Node, error) {
	var docs []*yaml.Node
	d := yaml.NewDecoder(bytes.NewReader(in))
	for {
		var doc yaml.Node
		err := d.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &doc)
	}
}

// sameAsLibrary compares what ParseDocuments and Parse read with the
// library's reading of in: every field of every node.
func sameAsLibrary(in []byte, got []*yaml.Node) error {
	want, err := libraryDocuments(in)
	if err != nil {
		return fmt.Errorf("the YAML library refuses what blockyaml read: %v", err)
	}
	if len(want) != len(got) {
		return fmt.Errorf("%d documents, the library: %d", len(got), len(want))
	}
	for i := range want {
		if err := sameNode(fmt.Sprintf("doc%d", i), want[i], got[i]); err != nil {
			return err
		}
	}
	one, err := Parse(in)
	if len(got) != 1 {
		if !errors.Is(err, ErrNotPlainBlock) {
			return fmt.Errorf("Parse read %d documents as one: %v", len(got), err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("Parse refused the one document ParseDocuments read: %v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return fmt.Errorf("yaml.Unmarshal refuses what Parse read: %v", err)
	}
	return sameNode("Unmarshal", &doc, one)
}

// sameNode compares two trees field by field. The fields other than
// Content are compared as a whole struct, so a field the library adds one
// day is compared too.
func sameNode(path string, want, got *yaml.Node) error {
	if got == nil {
		return fmt.Errorf("%s: nil node", path)
	}
	w, g := *want, *got
	w.Content, g.Content = nil, nil
	if !reflect.DeepEqual(w, g) {
		return fmt.Errorf("%s:\n got  %+v\n want %+v (the library)", path, g, w)
	}
	if len(want.Content) != len(got.Content) {
		return fmt.Errorf("%s: %d children, the library: %d", path, len(got.Content), len(want.Content))
	}
	for i := range want.Content {
		if err := sameNode(fmt.Sprintf("%s/%d", path, i), want.Content[i], got.Content[i]); err != nil {
			return err
		}
	}
	return nil
}

// TestSameNodeSeesEveryField: the comparison fails on a change to any
// field of any node, so a reading that passes it is the library's.
func TestSameNodeSeesEveryField(t *testing.T) {
	in := []byte(commentedManifest)
	want, err := libraryDocuments(in)
	if err != nil {
		t.Fatal(err)
	}
	leaf := want[0].Content[0].Content[0] // the first key
	for i := range reflect.TypeOf(*leaf).NumField() {
		got, _ := libraryDocuments(in)
		f := reflect.ValueOf(got[0].Content[0].Content[0]).Elem().Field(i)
		name := reflect.TypeOf(*leaf).Field(i).Name
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int, reflect.Uint32:
			if f.CanInt() {
				f.SetInt(f.Int() + 1)
			} else {
				f.SetUint(f.Uint() + 1)
			}
		case reflect.Pointer:
			f.Set(reflect.ValueOf(leaf))
		case reflect.Slice:
			f.Set(reflect.ValueOf([]*yaml.Node{leaf}))
		default:
			t.Fatalf("field %s of kind %v: teach this test to change it", name, f.Kind())
		}
		if err := sameNode("", want[0], got[0]); err == nil {
			t.Errorf("a change to %s went unseen", name)
		}
	}
}

// blockBody and blockDocument have every block shape: nested mappings,
// sequences of scalars and of mappings, literal blocks, and plain scalars
// the library resolves to numbers, booleans, null, timestamps and strings
// that look like numbers.
const blockBody = `apiVersion: v1
kind: Secret
metadata:
    name: web-tls
    namespace: shop
    annotations:
        cert-manager.io/common-name: ""
        certsync.io/serial: "03e8"
        url: https://example.org:8443/a,b[c]
        version: 3.13.3
        replicas: 3
        ratio: 0.5
        enabled: true
        nothing: ~
        day: 2026-11-25
        odd:key: x
        anchor#like: a#b
type: kubernetes.io/tls
data:
    tls.crt: Q0VSVElGSUNBVEU=
stringData:
    ports:
        - 8443
        - name: https
          nested:
            deep: value
          more: yes
        - plain words here
        - "quoted # not a comment"
    script: |
        line one
          indented
        # not a comment either
        last
`

const blockDocument = blockBody + `sops:
    age:
        - enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBLcWI5RlIydHRvRlVTSk1r
            -----END AGE ENCRYPTED FILE-----
          recipient: age1l5rxdxjr23czdk88ml4gt9u2e7lt49zs5rhgpr4xcus6mts3pfyszv55mw
    encrypted_regex: ^(data|stringData)$
    lastmodified: "2026-11-25T12:35:28Z"
    mac: ENC[AES256_GCM,data:1Wf0ixIN8YDjteI6EO+c5p4UV2lDlmAF,iv:abc=,tag:def==,type:str]
    version: 3.13.3
`

// benchManifest is a Certificate as the scale benchmarks and most users
// write it: flow mappings and sequences on one line.
const benchManifest = `apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: c1, namespace: ns1}
spec:
  secretName: c1-tls
  dnsNames: [c1.ns1.bench.test]
  privateKey: {algorithm: ECDSA}
  issuerRef: {name: le, kind: ClusterIssuer}
`

// commentedManifest has comments everywhere blockyaml reads them.
const commentedManifest = `# The shop's web front.
# Renewed by certsync.

# Owner: the web team.
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  # Where the Secret goes.
  name: web
  namespace: shop

  # Labels are copied onto the Secret.
  labels:
    team: web
# The certificate itself.
spec:
  secretName: web-tls
  dnsNames:
    # The apex first.
    - web.example.org
    # - old.example.org
    - www.example.org
  solvers:
    - http01: {}
      # Only for the zone.
      selector: {dnsZones: [example.org]}
    # é, — and 漢字 are kept as written.
    - {dns01: {}}
  issuerRef: {name: le, kind: ClusterIssuer}
`

func TestParseReadsAsTheLibrary(t *testing.T) {
	sopsFile, err := os.ReadFile(filepath.Join("testdata", "sops-secret.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"every block shape":           blockDocument,
		"a sops file":                 string(sopsFile), // written by the sops CLI
		"indented by two":             "a:\n  b:\n    - c: 1\n      d: |\n        x\n  e: f\n",
		"trailing blank":              "a: b\n\n\n",
		"blank between keys":          "a:\n    b: 1\n\n    c: 2\n",
		"sequence of literals":        "a:\n  - |\n    x\n  - b\n",
		"sequences at the key column": "a:\n- b\n- c: 1\n  d:\n  - e\n  # f\n  - g\n# h\ni:\n# j\n- k\n",
		"quoted keys":                 "\"on\": 1\n\"a: b #c\":\n  - \"\": x\n    \"y\": |\n      z\n",

		"bench manifest":        benchManifest,
		"flow in flow":          "solvers: [{http01: {}}, {dns01: {rfc2136: {nameserver: ns1}}}]\n",
		"empty flow":            "a: {}\nb: []\n",
		"flow spacing":          "a: [ b ,c,  d ]\nb: {c: d,e:   f }\n",
		"flow scalars":          "a: [1, 0x1F, true, ~, null, 2026-11-25, .inf, \"x, y\", \"\", a b]\n",
		"flow items":            "a:\n  - [b, c]\n  - {d: e}\n  - f\n",
		"flow under a dash key": "a:\n  - b: [c]\n    d: {e: f}\n",
		"flow colons":           "uris: [spiffe://example.org/ns/shop, a:b]\nm: {k:v: w:x, y: http://z:8/}\n",
		"flow in blocks":        "a:\n  b:\n    c: {d: e}\n  f: [g]\nh: i\n",

		"commented manifest":         commentedManifest,
		"head of the first key":      "# x\n# y\na: b\n",
		"document head":              "# x\n\na: b\n",
		"document and key heads":     "\n# x\n# y\n\n\n# z\na: b\n",
		"comment after a nested map": "a:\n  b:\n    c: 1\n# x\nd: 2\n",
		"comment after a sequence":   "a:\n  - b\n\n# x\nd: 2\n",
		"comment after a literal":    "a: |\n  x\n# c\nb: 1\n",
		"comment of a nested key":    "a:\n  # c\n  b: 1\n",
		"comment of a first item":    "a:\n  # c\n  - b\n",
		"empty comment":              "#\na: b\n",
		"comment with spaces":        "a:\n  #  x  \n  # y\n  b: c\nd: e\n",

		"leading marker":          "---\na: b\n",
		"two documents":           "a: b\n---\nc: [d]\n",
		"marker at the end":       "a: b\n---\n",
		"empty documents":         "---\n---\n\n---\na: b\n---\n\n\n",
		"blank before marker":     "\n\n---\na: b\n",
		"comments in documents":   "# x\na: b\n---\n# y\nc: d\n---\n\n# z\ne: f\n",
		"marker alone":            "---\n",
		"many certificates":       strings.Repeat("---\n"+benchManifest, 3),
		"document head, then two": "# repo\n\na: b\n---\nc: d\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseDocuments([]byte(in))
			if err != nil {
				t.Fatalf("left to the library: %v\n%s", err, in)
			}
			if err := sameAsLibrary([]byte(in), got); err != nil {
				t.Fatalf("%v\n%s", err, in)
			}
		})
	}
}

// TestRepositoryManifests: the manifests of the repository (examples,
// deployment files, test data) are read as the library reads them, and
// the Certificate and Issuer examples are read at all (they are what users
// copy).
func TestRepositoryManifests(t *testing.T) {
	root := filepath.Join("..", "..")
	var files []string
	for _, dir := range []string{"examples", "deploy"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	read := 0
	for _, p := range files {
		in, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseDocuments(in)
		mustRead := strings.Contains(p, "certificates") || strings.Contains(p, "issuers") || strings.Contains(p, "ingress")
		switch {
		case err == nil:
			read++
			if err := sameAsLibrary(in, got); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		case mustRead:
			t.Errorf("%s: left to the library: %v", p, err)
		case !errors.Is(err, ErrNotPlainBlock):
			t.Errorf("%s: %v", p, err)
		}
	}
	t.Logf("%d of %d files read by blockyaml", read, len(files))
	if len(files) < 10 {
		t.Fatalf("only %d manifests found under %s", len(files), root)
	}
}

func TestParseLeavesTheRest(t *testing.T) {
	tests := map[string]string{
		"empty":                       "",
		"blank lines only":            "\n\n",
		"no final line break":         "a: b\nc: |\n  d",
		"line comment":                "a: b # c\n",
		"line comment after flow":     "a: [b] # c\n",
		"comment in a flow":           "a: [b #c]\n",
		"foot comment":                "a: b\n# c\n",
		"comment then blank":          "a: b\n# c\n\nd: e\n",
		"two comment groups":          "a: b\n# x\n\n# y\nc: d\n",
		"comment at another column":   "a:\n  b: 1\n# c\n  d: 2\n",
		"comments at two columns":     "# x\n  # y\na: b\n",
		"comment only":                "# c\n",
		"document head only":          "# c\n\n",
		"head then marker":            "# c\n---\na: b\n",
		"head after a marker":         "---\n# c\n\na: b\n",
		"comment in an empty doc":     "a: b\n---\n# c\n",
		"comment before a marker":     "a: b\n# c\n---\nd: e\n",
		"document head of two":        "# x\n\n# y\n\na: b\n",
		"comment after the last item": "a:\n  - b\n  # c\nd: e\n",
		"comment control character":   "# \x01\na: b\n",
		"comment line separator":      "# \u2028\na: b\n",
		"comment C1 control":          "# \u0085\na: b\n",
		"comment invalid UTF-8":       "# \xff\na: b\n",
		"tab":                         "a:\n\tb: c\n",
		"carriage return":             "a: b\r\n",
		"byte order mark":             "\ufeffa: b\n",
		"non-ASCII":                   "a: é\n",
		"non-ASCII in a literal":      "a: |\n  é\n",
		"multi-line flow":             "a: [b,\n  c]\n",
		"flow trailing comma":         "a: [b, c,]\n",
		"flow pair in a sequence":     "a: [b: c]\n",
		"flow question mark":          "a: [b?c]\n",
		"flow colon at the end":       "a: [b:]\n",
		"flow mapping in a value":     "a: {b: c: d}\n",
		"flow key without value":      "a: {b}\n",
		"flow empty value":            "a: {b: }\n",
		"flow space before colon":     "a: {b : c}\n",
		"flow quoted key":             "a: {\"b\": c}\n",
		"flow single quotes":          "a: ['b']\n",
		"flow escape":                 "a: [\"b\\n\"]\n",
		"flow after the bracket":      "a: [b] c\n",
		"flow nested too deep":        "a: [[[[[b]]]]]\n",
		"flow at the top":             "{a: b}\n",
		"flow dash scalar":            "a: [-1]\n",
		"flow unclosed":               "a: {b: c\n",
		"anchor":                      "a: &x b\nc: *x\n",
		"tag":                         "a: !!str 3\n",
		"folded":                      "a: >\n  b\n",
		"strip chomping":              "a: |-\n  b\n",
		"keep chomping":               "a: |+\n  b\n",
		"indentation indicator":       "a: |2\n   b\n",
		"blank line in a literal":     "a: |\n  b\n\n  c\n",
		"multi-line plain":            "a: b\n  c\n",
		"document end":                "a: b\n...\n",
		"marker with text":            "--- a: b\n",
		"marker with a space":         "a: b\n--- \nc: d\n",
		"quoted key, colon after":     "\"a\" : b\n",
		"quoted key, no space":        "\"a\":b\n",
		"quoted key, two spaces":      "\"a\":  b\n",
		"quoted key, escape":          "\"a\\n\": b\n",
		"escape":                      "a: \"b\\n\"\n",
		"after the quote":             "a: \"b\" c\n",
		"single quotes":               "a: 'b'\n",
		"null value":                  "a:\nb: c\n",
		"comment deeper than a dash":  "a:\n- b\n  # c\n- d\n",
		"top-level sequence":          "- a\n",
		"top-level scalar":            "a\n",
		"key without space":           "a:b\n",
		"two spaces after colon":      "a:  b\n",
		"deeper first line":           "  a: b\n",
		"uneven keys":                 "a:\n    b: 1\n   c: 2\n",
		"nested sequence":             "a:\n  - - b\n",
		"dash alone":                  "a:\n  -\n    b: c\n",
		"indicator start":             "a: -b\n",
		"key ending the line twice":   "a: b:\n",
		"mapping value in plain":      "a: b: c\n",
		"literal at the end":          "a: |\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			docs, err := ParseDocuments([]byte(in))
			if len(docs) == 0 && err == nil && strings.TrimSpace(in) == "" {
				return // no documents, as the library reads it: nothing to leave
			}
			if !errors.Is(err, ErrNotPlainBlock) {
				t.Fatalf("read %q as %d documents, %v; want it left to the library", in, len(docs), err)
			}
			if n, err := Parse([]byte(in)); !errors.Is(err, ErrNotPlainBlock) {
				t.Fatalf("Parse read %q as %+v, %v", in, n, err)
			}
		})
	}
}

// FuzzBlockYAML: whatever blockyaml reads, the YAML library reads the same
// way, node for node and field for field.
func FuzzBlockYAML(f *testing.F) {
	for _, seed := range []string{
		blockDocument,
		benchManifest,
		commentedManifest,
		"a:\n  b:\n    - c: 1\n      d: |\n        x\n  e: f\n",
		"a: 0x1F\nb: 1_000\nc: .5\nd: -1\ne: +1\nf: 1e3\ng: 0o17\nh: .inf\ni: NaN\nj: Null\nk: FALSE\nl: On\n",
		"a: 2001-12-14t21:59:43.10-05:00\nb: 2002-12-14\nc: 1:20\nd: 190:20:30\n",
		"a: [1, b, {c: d, e: [f]}, \"g\"]\n",
		"# x\n\n# y\na:\n  # z\n  - b\n---\nc: d\n---\n",
		"a:\n  - b: 1\n    # c\n    d: 2\n  # e\n  - f\n",
		"solvers:\n- http01: {}\n  selector:\n    dnsZones: [a.example]\n\"on\": [spiffe://a/b, c:d]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseDocuments(in)
		if err != nil {
			if !errors.Is(err, ErrNotPlainBlock) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if err := sameAsLibrary(in, got); err != nil {
			t.Fatalf("%v\ninput: %q", err, in)
		}
	})
}
