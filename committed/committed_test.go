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
		{"plaintext", "secrets/default/shop/web-tls.yaml", strings.Split(sample, "sops:")[0], "not SOPS-encrypted"},
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

func TestWithoutData(t *testing.T) {
	out := string(withoutData([]byte(sample)))
	if strings.Contains(out, "tls.key") || !strings.Contains(out, "type: kubernetes.io/tls\nsops:") {
		t.Fatalf("data block not cut cleanly:\n%s", out)
	}
	if flow := "kind: Secret\ndata: {a: b}\n"; string(withoutData([]byte(flow))) != flow {
		t.Fatal("flow-style data must be left alone")
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
