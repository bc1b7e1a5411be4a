package committed

import (
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

const sample = `apiVersion: v1
kind: Secret
metadata:
    name: web-tls
    namespace: shop
    annotations:
        cert-manager.io/alt-names: example.com,www.example.com
        certsync.io/not-after: "2027-02-22T10:00:00Z"
        certsync.io/serial: 0abc
        certsync.io/source: certificates/web.yaml
type: kubernetes.io/tls
data:
    tls.crt: ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]
    tls.key: ENC[AES256_GCM,data:def,iv:x,tag:y,type:str]
sops:
    age:
        - recipient: age1bbb
          enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            -----END AGE ENCRYPTED FILE-----
        - recipient: age1aaa
    lastmodified: "2026-11-24T10:00:00Z"
    encrypted_regex: ^(data|stringData)$
`

func TestRead(t *testing.T) {
	rec, err := Read("secrets/default/shop/web-tls.yaml", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2027, 2, 22, 10, 0, 0, 0, time.UTC)
	if rec.Serial != "0abc" || !rec.NotAfter.Equal(want) || strings.Join(rec.DNSNames, ",") != "example.com,www.example.com" ||
		strings.Join(rec.Recipients, ",") != "age1aaa,age1bbb" || rec.Source != "certificates/web.yaml" || rec.Cluster != "default" {
		t.Fatalf("record = %+v", rec)
	}
}

func TestReadRefuses(t *testing.T) {
	tests := []struct {
		name, path, content, want string
	}{
		{"moved by hand", "secrets/default/api/web-tls.yaml", sample, "does not match the path"},
		{"not a Secret", "secrets/default/shop/web-tls.yaml", strings.Replace(sample, "kind: Secret", "kind: ConfigMap", 1), "want Secret"},
		{"malformed", "secrets/default/shop/web-tls.yaml", "metadata: [", "malformed YAML"},
		{"outside the layout", "secrets/web-tls.yaml", sample, "not a certsync Secret path"},
		{"traversal", "secrets/default/../shop/web-tls.yaml", sample, "not a certsync Secret path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(tt.path, []byte(tt.content))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("err = %v, want %q naming the file", err, tt.want)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	p := SecretPath("prod-eu", "shop", "web-tls")
	if c, ns, n, ok := ParseSecretPath(p); !ok || c != "prod-eu" || ns != "shop" || n != "web-tls" {
		t.Fatalf("round trip of %s", p)
	}
	if AccountPath("", "le") != "accounts/clusterissuers/le.yaml" || AccountPath("shop", "le") != "accounts/namespaces/shop/le.yaml" {
		t.Fatal("account paths")
	}
}

// The fast scanner and the YAML parser must agree on every file; the
// scanner gives up on what it does not know.
func TestScanAgreesWithYAML(t *testing.T) {
	variants := []string{
		sample,
		sopsLayout,
		strings.Replace(sample, "certsync.io/serial: 0abc", `certsync.io/serial: "0abc"`, 1),
		strings.Replace(sample, "certsync.io/serial: 0abc", `certsync.io/serial: '0abc'`, 1),
		strings.ReplaceAll(sample, "    ", "  "),                                               // two-space indent: falls back
		strings.Replace(sample, "metadata:\n", "metadata: # note\n", 1),                        // comment
		strings.Replace(sample, "certsync.io/serial: 0abc", `certsync.io/serial: "0a\"bc"`, 1), // escape: falls back
	}
	for i, v := range variants {
		fast, fastErr := Read("secrets/default/shop/web-tls.yaml", []byte(v))
		var f file
		yamlErr := yaml.Unmarshal([]byte(v), &f)
		if (fastErr != nil) != (yamlErr != nil) {
			t.Fatalf("variant %d: fast %v, yaml %v", i, fastErr, yamlErr)
		}
		if fastErr == nil && (fast.Serial != f.Metadata.Annotations[AnnotationSerial] || len(fast.Recipients) != len(f.SOPS.Age)) {
			t.Errorf("variant %d: fast read %q/%v, YAML %q/%d", i, fast.Serial, fast.Recipients, f.Metadata.Annotations[AnnotationSerial], len(f.SOPS.Age))
		}
	}
}

// sopsLayout is how the sops YAML store writes an age key entry: the enc
// block first, the recipient after it.
const sopsLayout = `apiVersion: v1
kind: Secret
metadata:
    name: web-tls
    namespace: shop
    annotations:
        certsync.io/serial: 0abc
type: kubernetes.io/tls
data:
    tls.key: ENC[AES256_GCM,data:McdtHo,iv:kVm,tag:x,type:str]
sops:
    age:
        - enc: |
            -----BEGIN AGE ENCRYPTED FILE-----
            recipient: not-a-key-line
            -----END AGE ENCRYPTED FILE-----
          recipient: age1dc3ftt
    encrypted_regex: ^(data|stringData)$
    lastmodified: "2026-11-24T14:48:48Z"
    version: 3.13.3
`

func TestScanSOPSLayout(t *testing.T) {
	f, ok := scan([]byte(sopsLayout))
	if !ok || len(f.SOPS.Age) != 1 || f.SOPS.Age[0].Recipient != "age1dc3ftt" {
		t.Fatalf("scan of the sops layout: ok %v, %+v", ok, f.SOPS)
	}
}

// plainSecret is a Secret as someone might commit it by hand: no SOPS.
// The values are clearly fake.
const plainSecret = `apiVersion: v1
kind: Secret
metadata:
    name: web-tls
    namespace: shop
    annotations:
        certsync.io/serial: 0abc
type: kubernetes.io/tls
data:
    tls.crt: Q0VSVElGSUNBVEU=
    tls.key: RkFLRS1LRVk=
`

func TestReadPlaintext(t *testing.T) {
	const p = "secrets/default/shop/web-tls.yaml"
	enc := "ENC[AES256_GCM,data:def,iv:x,tag:y,type:str]" // sample's tls.key
	tests := []struct {
		name      string
		content   string
		encrypted bool
		want      string // PlaintextData joined
		slow      bool   // the scanner hands it to the YAML parser
	}{
		{"encrypted", sample, true, "", false},
		{"no sops section", plainSecret, false, "data.tls.crt,data.tls.key", false},
		{"rule left data alone", strings.Replace(sample, "tls.key: "+enc, "tls.key: RkFLRS1LRVk=", 1), true, "data.tls.key", false},
		{"stringData in the clear", strings.Replace(sample, "sops:\n", "stringData:\n    password: hunter2\n    token: "+enc+"\nsops:\n", 1), true, "stringData.password", false},
		{"empty and null values", strings.Replace(sample, "    tls.key: "+enc+"\n", "    tls.key: \"\"\n    ca.crt:\n    other: ~\n", 1), true, "", false},
		{"quoted ciphertext", strings.Replace(sample, "tls.key: "+enc, `tls.key: "`+enc+`"`, 1), true, "", false},
		{"block scalar", strings.Replace(sample, "tls.key: "+enc, "tls.key: |\n        RkFLRS1LRVk=\n        MORE", 1), true, "data.tls.key", false},
		{"empty block scalar", strings.Replace(sample, "tls.key: "+enc, "tls.key: |", 1), true, "", false},
		{"multi-line plain value", strings.Replace(sample, "tls.key: "+enc, "tls.key: RkFL\n        RS1LRVk=", 1), true, "data.tls.key", false},
		{"two-space indent", strings.ReplaceAll(plainSecret, "    ", "  "), false, "data.tls.crt,data.tls.key", true},
		{"number", strings.Replace(sample, "tls.key: "+enc, "tls.key: 12", 1), true, "data.tls.key", false},
		{"nested", strings.Replace(sample, "tls.key: "+enc, "tls.key:\n        inner: "+enc, 1), true, "data.tls.key", true},
		{"anchor", strings.Replace(sample, "tls.key: "+enc, "tls.key: &k "+enc, 1), true, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, fast := scan([]byte(tt.content)); fast == tt.slow {
				t.Errorf("scanner handled it: %v, want %v", fast, !tt.slow)
			}
			rec, err := Read(p, []byte(tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Encrypted != tt.encrypted || strings.Join(rec.PlaintextData, ",") != tt.want {
				t.Errorf("Encrypted %v PlaintextData %v, want %v %q", rec.Encrypted, rec.PlaintextData, tt.encrypted, tt.want)
			}
			if rec.Serial != "0abc" {
				t.Errorf("metadata not read: serial %q", rec.Serial)
			}
			// The fast scanner and the YAML parser agree.
			slow, err := parseYAML([]byte(tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(slow.plaintext, ",") != tt.want || (slow.SOPS != nil) != tt.encrypted {
				t.Errorf("YAML path: plaintext %v, sops %v", slow.plaintext, slow.SOPS != nil)
			}
		})
	}
}

func TestExposedAndRecipientsOfAnyFile(t *testing.T) {
	account := "apiVersion: v1\nkind: Secret\nmetadata:\n    name: le\n    namespace: cert-manager\ntype: Opaque\ndata:\n    tls.key: RkFLRS1LRVk=\n"
	const p = "accounts/clusterissuers/le.yaml"
	keys, err := Exposed(p, []byte(account))
	if err != nil || strings.Join(keys, ",") != "data.tls.key" {
		t.Fatalf("Exposed = %v, %v", keys, err)
	}
	if r, err := Recipients(p, []byte(account)); err != nil || r != nil {
		t.Fatalf("Recipients of a plaintext file = %v, %v; want none and no error", r, err)
	}
	if keys, err := Exposed(p, []byte(sample)); err != nil || len(keys) != 0 {
		t.Fatalf("Exposed of an encrypted file = %v, %v", keys, err)
	}
	multi := sample + "---\n" + account
	if keys, err := Exposed(p, []byte(multi)); err != nil || strings.Join(keys, ",") != "data.tls.key" {
		t.Fatalf("Exposed of two documents = %v, %v", keys, err)
	}
	if _, err := Exposed(p, []byte("data: [")); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("malformed: %v", err)
	}
	// Errors and results never carry the values.
	for _, s := range keys {
		if strings.Contains(s, "RkFL") {
			t.Fatalf("a value leaked: %q", s)
		}
	}
}
