package encrypt

import (
	"context"
	"reflect"
	"testing"

	"filippo.io/age"
	sops "github.com/getsops/sops/v3"
	"go.yaml.in/yaml/v3"

	"github.com/certsync/certsync/internal/blockyaml"
)

// The block-YAML fast path itself, and its comparison with the YAML
// library, are internal/blockyaml's tests; these check that encrypt takes
// it for the files sops and certsync write, to the tree sops' reading
// gives.

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

// TestLoadEncryptedTakesTheBlockPath: the files certsync and the sops CLI
// write are read by the block parser to the tree sops' own store reads
// (otherwise the speed-up would silently be gone, or worse, differ).
func TestLoadEncryptedTakesTheBlockPath(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	tests := map[string][]byte{
		"a certsync Secret": certsyncSecret(t, id),
		"a sops file":       sopsFile(t, id, walkDocument, sops.Metadata{EncryptedRegex: DefaultEncryptedRegex}),
		"all encrypted":     sopsFile(t, id, walkDocument, sops.Metadata{}),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := blockyaml.Parse(in); err != nil {
				t.Fatalf("not read by the block parser: %v\n%s", err, in)
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
		})
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
