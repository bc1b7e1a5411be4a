package encrypt

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"filippo.io/age"
	sops "github.com/getsops/sops/v3"
	"go.yaml.in/yaml/v3"
)

// sameAsLibrary compares the block parser's reading of in with the YAML
// library's: node kinds, resolved tags and values, in order.
func sameAsLibrary(in []byte, got *yaml.Node) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return fmt.Errorf("the YAML library refuses what the block parser read: %v", err)
	}
	if len(doc.Content) != 1 {
		return fmt.Errorf("the YAML library read %d documents", len(doc.Content))
	}
	return sameNode("", doc.Content[0], got)
}

func sameNode(path string, want, got *yaml.Node) error {
	if want.Kind != got.Kind || want.ShortTag() != got.ShortTag() {
		return fmt.Errorf("%s: kind %v tag %s, the library: kind %v tag %s", path, got.Kind, got.ShortTag(), want.Kind, want.ShortTag())
	}
	if want.Kind == yaml.ScalarNode && want.Value != got.Value {
		return fmt.Errorf("%s: %q, the library: %q", path, got.Value, want.Value)
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

// blockBody and blockDocument have every shape the block parser reads: nested mappings,
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
    script: |
        line one
          indented
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

func TestBlockYAMLReadsAsTheLibrary(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	tests := map[string][]byte{
		"every shape":        []byte(blockDocument),
		"indented by two":    []byte("a:\n  b:\n    - c: 1\n      d: |\n        x\n  e: f\n"),
		"trailing blank":     []byte("a: b\n\n\n"),
		"blank between keys": []byte("a:\n    b: 1\n\n    c: 2\n"),
		"a sops file":        sopsFile(t, id, blockBody, sops.Metadata{EncryptedRegex: DefaultEncryptedRegex}),
		"all encrypted":      sopsFile(t, id, blockBody, sops.Metadata{}),
		"a certsync Secret":  certsyncSecret(t, id),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseBlockYAML(in)
			if err != nil {
				t.Fatalf("the block parser left it to the library: %v\n%s", err, in)
			}
			if err := sameAsLibrary(in, got); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// certsyncSecret is a Secret as certsync encrypts it.
func certsyncSecret(t *testing.T, id *age.X25519Identity) []byte {
	t.Helper()
	s, err := New(Config{SOPSConfig: []byte("creation_rules:\n  - age: " + id.Recipient().String() + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Encrypt(context.Background(), "secrets/default/shop/web-tls.yaml", []byte(`apiVersion: v1
kind: Secret
metadata:
  name: web-tls
  namespace: shop
  annotations:
    cert-manager.io/alt-names: web.example.org
    certsync.io/serial: "03e8"
  labels:
    controller.cert-manager.io/fao: "true"
type: kubernetes.io/tls
data:
  tls.crt: Q0VSVElGSUNBVEU=
  tls.key: S0VZ
`))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLoadEncryptedTakesTheBlockPath: a file certsync writes is read by the
// block parser to the tree sops' own store reads (otherwise the speed-up
// would silently be gone, or worse, differ).
func TestLoadEncryptedTakesTheBlockPath(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	in := certsyncSecret(t, id)
	if _, err := parseBlockYAML(in); err != nil {
		t.Fatalf("not read by the block parser: %v", err)
	}
	got, err := loadEncrypted(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := loadWithLibrary(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("block parser:\n%#v\nYAML library:\n%#v", got, want)
	}
}

// loadWithLibrary is loadEncrypted without the block parser.
func loadWithLibrary(in []byte) (sops.Tree, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return sops.Tree{}, err
	}
	branch, err := nodeBranch(doc.Content[0])
	if err != nil {
		return sops.Tree{}, err
	}
	return treeOf(sops.TreeBranches{branch})
}

func TestBlockYAMLLeavesTheRest(t *testing.T) {
	tests := map[string]string{
		"empty":                      "",
		"no final line break":        "a: b\nc: |\n  d",
		"comment":                    "a: b # c\n",
		"tab":                        "a:\n\tb: c\n",
		"carriage return":            "a: b\r\n",
		"byte order mark":            "\ufeffa: b\n",
		"non-ASCII":                  "a: é\n",
		"flow mapping":               "a: {b: c}\n",
		"flow sequence":              "a: [b, c]\n",
		"anchor":                     "a: &x b\nc: *x\n",
		"tag":                        "a: !!str 3\n",
		"folded":                     "a: >\n  b\n",
		"strip chomping":             "a: |-\n  b\n",
		"keep chomping":              "a: |+\n  b\n",
		"indentation indicator":      "a: |2\n   b\n",
		"blank line in a literal":    "a: |\n  b\n\n  c\n",
		"multi-line plain":           "a: b\n  c\n",
		"documents":                  "---\na: b\n",
		"document end":               "a: b\n...\n",
		"quoted key":                 "\"a\": b\n",
		"escape":                     "a: \"b\\n\"\n",
		"single quotes":              "a: 'b'\n",
		"null value":                 "a:\nb: c\n",
		"sequence at the key column": "a:\n- b\n",
		"top-level sequence":         "- a\n",
		"top-level scalar":           "a\n",
		"key without space":          "a:b\n",
		"two spaces after colon":     "a:  b\n",
		"deeper first line":          "  a: b\n",
		"uneven keys":                "a:\n    b: 1\n   c: 2\n",
		"nested sequence":            "a:\n  - - b\n",
		"dash alone":                 "a:\n  -\n    b: c\n",
		"indicator start":            "a: -b\n",
		"key ending the line twice":  "a: b:\n",
		"mapping value in plain":     "a: b: c\n",
		"literal at the end":         "a: |\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if n, err := parseBlockYAML([]byte(in)); !errors.Is(err, errNotPlainBlock) {
				t.Fatalf("read %q as %+v, %v; want it left to the library", in, n, err)
			}
		})
	}
}

// FuzzBlockYAML: whatever the block parser reads, the YAML library reads
// the same way.
func FuzzBlockYAML(f *testing.F) {
	f.Add([]byte(blockDocument))
	f.Add([]byte("a:\n  b:\n    - c: 1\n      d: |\n        x\n  e: f\n"))
	f.Add([]byte("a: 0x1F\nb: 1_000\nc: .5\nd: -1\ne: +1\nf: 1e3\ng: 0o17\nh: .inf\ni: NaN\nj: Null\nk: FALSE\nl: On\n"))
	f.Add([]byte("a: 2001-12-14t21:59:43.10-05:00\nb: 2002-12-14\nc: 1:20\nd: 190:20:30\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := parseBlockYAML(in)
		if err != nil {
			if !errors.Is(err, errNotPlainBlock) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if err := sameAsLibrary(in, got); err != nil {
			t.Fatalf("%v\ninput:\n%s", err, strings.TrimSpace(string(in)))
		}
	})
}
