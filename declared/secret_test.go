package declared

import (
	"strings"
	"testing"
)

// sopsSecret is a Secret as sops --encrypt --encrypted-regex
// '^(data|stringData)$' leaves it; metadata is given whole.
func sopsSecret(metadata string) string {
	return `apiVersion: v1
kind: Secret
metadata:
` + metadata + `type: Opaque
stringData:
  api-token: ENC[AES256_GCM,data:cGxhaW4=,iv:aXY=,tag:dGFn,type:str]
sops:
  age:
  - recipient: age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq
  lastmodified: "2026-11-01T00:00:00Z"
  mac: ENC[AES256_GCM,data:bWFj,iv:aXY=,tag:dGFn,type:str]
  encrypted_regex: ^(data|stringData)$
  version: 3.9.0
`
}

func TestSecrets(t *testing.T) {
	const cloudflare = "  name: cloudflare\n  namespace: cert-manager\n"
	tests := []struct {
		name  string
		files map[string]string
		// want are the recorded Secrets as "namespace/name@file:line:column".
		want []string
		// problems are "file:line:column: substring", in order.
		problems []string
	}{
		{
			name:  "encrypted Secret recorded",
			files: map[string]string{"s.yaml": sopsSecret(cloudflare)},
			want:  []string{"cert-manager/cloudflare@s.yaml:1:1"},
		},
		{
			name:  "namespace defaults to default",
			files: map[string]string{"s.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + sopsSecret("  name: token\n")},
			want:  []string{"default/token@s.yaml:5:1"},
		},
		{
			name:     "plaintext Secret with data",
			files:    map[string]string{"p.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\ntype: Opaque\ndata:\n  token: c2VjcmV0\n"},
			problems: []string{"p.yaml:5:1: Secret default/creds: data: plaintext Secret with data: anyone who can read the repository can read it; encrypt it (sops --encrypt --in-place p.yaml) — certsync never uses it"},
		},
		{
			name:     "plaintext Secret with stringData",
			files:    map[string]string{"p.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: dns}\nstringData: {token: hunter2}\n"},
			problems: []string{"p.yaml:4:1: Secret dns/creds: stringData: plaintext Secret with stringData"},
		},
		{
			name: "plaintext Secret without data is fine",
			files: map[string]string{"p.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sa-token\n  annotations: {kubernetes.io/service-account.name: build}\n" +
				"type: kubernetes.io/service-account-token\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: empty}\ndata: {}\nstringData: null\n"},
		},
		{
			name:     "encrypted Secret with a value left in the clear",
			files:    map[string]string{"s.yaml": strings.Replace(sopsSecret(cloudflare), "stringData:\n", "stringData:\n  zone_unencrypted: example.com\n", 1)},
			problems: []string{`s.yaml:8:21: Secret cert-manager/cloudflare: stringData["zone_unencrypted"]: "zone_unencrypted" is not encrypted`},
		},
		{
			name:     "encrypted metadata",
			files:    map[string]string{"s.yaml": sopsSecret("  name: ENC[AES256_GCM,data:eA==,iv:aXY=,tag:dGFn,type:str]\n")},
			problems: []string{"s.yaml:4:3: metadata: is encrypted: certsync finds a Secret by its plaintext name"},
		},
		{
			name:     "invalid name",
			files:    map[string]string{"s.yaml": sopsSecret("  name: Not_A_Name\n")},
			problems: []string{`s.yaml:4:9: Secret default/Not_A_Name: metadata.name: "Not_A_Name"`},
		},
		{
			name: "declared twice",
			files: map[string]string{
				"a.yaml": sopsSecret(cloudflare),
				"b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + sopsSecret(cloudflare),
			},
			problems: []string{
				"a.yaml:1:1: Secret cert-manager/cloudflare: declared 2 times (a.yaml:1:1, b.yaml:5:1)",
				"b.yaml:5:1: Secret cert-manager/cloudflare: declared 2 times",
			},
		},
		{
			name:     "the Secret a Certificate writes",
			files:    map[string]string{"s.yaml": sopsSecret("  name: good-tls\n  namespace: a\n")},
			problems: []string{"s.yaml:1:1: Secret a/good-tls: is the spec.secretName of Certificate a/good"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []File
			for p, c := range tt.files {
				files = append(files, File{Path: p, Content: []byte(c)})
			}
			set := parseWithBase(t, files...)
			var got []string
			for _, s := range set.Secrets {
				got = append(got, s.Key()+"@"+s.Source.String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("Secrets = %v, want %v", got, tt.want)
			}
			if len(set.Problems) != len(tt.problems) {
				t.Fatalf("problems = %v, want %d", set.Problems, len(tt.problems))
			}
			for i, want := range tt.problems {
				if got := set.Problems[i].Error(); !strings.HasPrefix(got, want) {
					t.Errorf("problem %d = %q, want it to start with %q", i, got, want)
				}
			}
		})
	}
}

// TestSecretsCacheContract: ParseFile depends on the file alone (a
// duplicate in another file is not its business), Combine finds the
// duplicate, and the cached parts are left as they were.
func TestSecretsCacheContract(t *testing.T) {
	a := ParseFile(File{Path: "a.yaml", Content: []byte(sopsSecret("  name: x\n"))})
	b := ParseFile(File{Path: "b.yaml", Content: []byte(sopsSecret("  name: x\n"))})
	if len(a.Secrets) != 1 || len(a.Problems) != 0 {
		t.Fatalf("ParseFile = %+v", a)
	}
	set := Combine([]Set{a, b})
	if len(set.Secrets) != 0 || len(set.Problems) != 2 {
		t.Errorf("Combine = %+v, want the duplicate reported at both", set)
	}
	if len(a.Secrets) != 1 || len(b.Secrets) != 1 || len(a.Problems) != 0 {
		t.Errorf("Combine modified its parts: %+v %+v", a, b)
	}
}
