package encrypt

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"filippo.io/age"
	sops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/keyservice"
	yamlstore "github.com/getsops/sops/v3/stores/yaml"
)

// A Secret with every kind of value a manifest can hold: nested maps,
// lists of scalars and of maps, numbers, booleans, an empty string and a
// key with a colon (sops joins path elements with colons).
const walkDocument = `apiVersion: v1
kind: Secret
metadata:
  name: web-tls
  namespace: shop
  labels:
    app: web
  annotations:
    cert-manager.io/common-name: web.example.org
    "odd:key": "a:b"
  finalizers: [one, two]
type: kubernetes.io/tls
immutable: false
data:
  tls.crt: Q0VSVElGSUNBVEU=
  tls.key: S0VZ
  password_secret: cGFzcw==
  empty: ""
stringData:
  nested:
    - {port: 8443, weight: 0.5, on: true}
    - plain_unencrypted: visible
`

// sopsFile encrypts walkDocument (or doc) with metadata settings the way
// the sops CLI does, to one age recipient.
func sopsFile(t *testing.T, id *age.X25519Identity, doc string, settings sops.Metadata) []byte {
	t.Helper()
	mk, err := sopsage.MasterKeyFromRecipient(id.Recipient().String())
	if err != nil {
		t.Fatal(err)
	}
	meta := settings
	meta.KeyGroups = []sops.KeyGroup{{keys.MasterKey(mk)}}
	meta.Version = "3.13.3"
	store := yamlstore.NewStore(&config.YAMLStoreConfig{})
	branches, err := store.LoadPlainFile([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tree := sops.Tree{Branches: branches, Metadata: meta}
	dataKey, errs := tree.GenerateDataKeyWithKeyServices([]keyservice.KeyServiceClient{keyservice.NewLocalClient()})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := common.EncryptTree(common.EncryptTreeOpts{DataKey: dataKey, Tree: &tree, Cipher: aes.NewCipher()}); err != nil {
		t.Fatal(err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bySOPS decrypts with sops' own walk only: the reference.
func bySOPS(t *testing.T, s *SOPS, file []byte) ([]byte, error) {
	t.Helper()
	store := yamlstore.NewStore(&config.YAMLStoreConfig{})
	tree, err := store.LoadEncryptedFile(file)
	if err != nil {
		return nil, err
	}
	key, err := s.dataKey(&tree)
	if err != nil {
		t.Fatal(err)
	}
	c := aes.NewCipher()
	mac, err := tree.Decrypt(key, c)
	if err != nil {
		return nil, err
	}
	stored, err := c.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format("2006-01-02T15:04:05Z07:00"))
	if err != nil || stored != mac {
		return nil, errors.New("MAC mismatch")
	}
	return store.EmitPlainFile(tree.Branches)
}

// usesOwnWalk reports whether decryptValues handles the file itself, and
// with the file's MAC.
func usesOwnWalk(t *testing.T, s *SOPS, file []byte) bool {
	t.Helper()
	store := yamlstore.NewStore(&config.YAMLStoreConfig{})
	tree, err := store.LoadEncryptedFile(file)
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.dataKey(&tree)
	if err != nil {
		t.Fatal(err)
	}
	c := aes.NewCipher()
	stored, err := c.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format("2006-01-02T15:04:05Z07:00"))
	if err != nil {
		t.Fatal(err)
	}
	mac, err := decryptValues(&tree, key, c)
	return err == nil && mac == stored
}

// TestOwnWalkDecryptsAsSOPSDoes: for each of sops' ways of choosing the
// values to encrypt, Decrypt and DecryptDocument give what sops' own walk
// gives, and the files certsync and Flux users write are decrypted by the
// own walk (otherwise the speed-up would silently be gone). Files with
// comments are left to sops and come out the same.
func TestOwnWalkDecryptsAsSOPSDoes(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	s, err := New(Config{AgeIdentities: []byte(id.String())})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		doc     string
		meta    sops.Metadata
		ownWalk bool
	}{
		{"Flux's encrypted_regex", walkDocument, sops.Metadata{EncryptedRegex: DefaultEncryptedRegex}, true},
		// What the sops CLI writes when a rule names no values: a file
		// with no selector reads as unencrypted_suffix _unencrypted.
		{"sops' default", walkDocument, sops.Metadata{UnencryptedSuffix: "_unencrypted"}, true},
		{"unencrypted_regex", walkDocument, sops.Metadata{UnencryptedRegex: "^(apiVersion|kind|metadata|type)$"}, true},
		{"encrypted_suffix", walkDocument, sops.Metadata{EncryptedSuffix: "_secret"}, true},
		{"unencrypted_suffix", walkDocument, sops.Metadata{UnencryptedSuffix: "_secret"}, true},
		{"mac_only_encrypted", walkDocument, sops.Metadata{EncryptedRegex: DefaultEncryptedRegex, MACOnlyEncrypted: true}, true},
		{"comments", "# a comment\n" + walkDocument, sops.Metadata{EncryptedRegex: DefaultEncryptedRegex}, false},
		{"encrypted_comment_regex", "# sops:enc\n" + walkDocument, sops.Metadata{EncryptedCommentRegex: "sops:enc"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := sopsFile(t, id, tt.doc, tt.meta)
			want, err := bySOPS(t, s, file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Decrypt(context.Background(), "secrets/a.yaml", file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Decrypt:\n%s\nsops:\n%s", got, want)
			}
			if own := usesOwnWalk(t, s, file); own != tt.ownWalk {
				t.Fatalf("own walk used: %v, want %v", own, tt.ownWalk)
			}
			sameReading(t, file, tt.ownWalk)
			doc, err := s.DecryptDocument(context.Background(), "secrets/a.yaml", file)
			if err != nil {
				t.Fatal(err)
			}
			if d := doc["data"].(map[string]any); d["tls.key"] != "S0VZ" || d["empty"] != "" {
				t.Fatalf("document data = %v", d)
			}
			nested := doc["stringData"].(map[string]any)["nested"].([]any)
			if m := nested[0].(map[string]any); m["port"] != 8443 || m["on"] != true || m["weight"] != 0.5 {
				t.Fatalf("document stringData.nested[0] = %#v", m)
			}
		})
	}
}

// sameReading checks that loadEncrypted reads file as sops' YAML store
// does, or leaves it to the store.
func sameReading(t *testing.T, file []byte, ownParse bool) {
	t.Helper()
	want, err := yamlstore.NewStore(&config.YAMLStoreConfig{}).LoadEncryptedFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loadEncrypted(file)
	if !ownParse {
		if !errors.Is(err, errLeaveToSOPS) {
			t.Fatalf("loadEncrypted: %v, want errLeaveToSOPS", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("loadEncrypted: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loadEncrypted read\n%#v\nsops' store read\n%#v", got, want)
	}
}

// TestOwnParseLeavesTheUnusualToSOPS: YAML whose reading this package
// does not repeat is read by sops' store, with the same result.
func TestOwnParseLeavesTheUnusualToSOPS(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	s, err := New(Config{AgeIdentities: []byte(id.String())})
	if err != nil {
		t.Fatal(err)
	}
	file := string(sopsFile(t, id, walkDocument, sops.Metadata{EncryptedRegex: DefaultEncryptedRegex}))
	tests := []struct{ name, edited string }{
		{"comment", strings.Replace(file, "kind: Secret", "kind: Secret # the kind", 1)},
		{"anchor and alias", strings.Replace(strings.Replace(file, "app: web", "app: &app web", 1), "namespace: shop", "namespace: *app", 1)},
		{"repeated key", strings.Replace(file, "kind: Secret", "kind: Secret\nkind: Secret", 1)},
		{"not YAML", file[:len(file)/2] + "\n  - : ["},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadEncrypted([]byte(tt.edited)); !errors.Is(err, errLeaveToSOPS) {
				t.Fatalf("loadEncrypted: %v, want errLeaveToSOPS", err)
			}
			_, want := bySOPS(t, s, []byte(tt.edited))
			_, got := s.Decrypt(context.Background(), "secrets/a.yaml", []byte(tt.edited))
			if (got == nil) != (want == nil) {
				t.Fatalf("Decrypt: %v; sops: %v", got, want)
			}
		})
	}
}

// TestOwnWalkRefusesWhatSOPSRefuses: edits outside SOPS fail with
// ErrTampered whichever walk sees them.
func TestOwnWalkRefusesWhatSOPSRefuses(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	s, err := New(Config{AgeIdentities: []byte(id.String())})
	if err != nil {
		t.Fatal(err)
	}
	file := string(sopsFile(t, id, walkDocument, sops.Metadata{EncryptedRegex: DefaultEncryptedRegex}))
	ciphertextOf := func(key string) string {
		for _, line := range strings.Split(file, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok && k == key {
				return v
			}
		}
		t.Fatalf("no %s in\n%s", key, file)
		return ""
	}
	crt, key := ciphertextOf("tls.crt"), ciphertextOf("tls.key")
	tests := []struct {
		name   string
		edited string
	}{
		{"plaintext annotation changed", strings.Replace(file, "web.example.org", "evil.example.org", 1)},
		{"encrypted value altered", strings.Replace(file, crt, crt[:20]+"A"+crt[21:], 1)},
		{"encrypted values swapped", strings.NewReplacer(crt, key, key, crt).Replace(file)},
		{"encrypted_regex edited so data reads as plaintext", strings.Replace(file, "encrypted_regex: ^(data|stringData)$", "encrypted_regex: ^nothing$", 1)},
		{"value moved under another key", strings.Replace(file, "tls.key:", "tls.pem:", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.edited == file {
				t.Fatal("the edit changed nothing")
			}
			if _, err := bySOPS(t, s, []byte(tt.edited)); err == nil {
				t.Fatal("sops accepts the edit: the case proves nothing")
			}
			if _, err := s.Decrypt(context.Background(), "secrets/a.yaml", []byte(tt.edited)); !errors.Is(err, ErrTampered) {
				t.Fatalf("Decrypt: %v, want ErrTampered", err)
			}
			if _, err := s.DecryptDocument(context.Background(), "secrets/a.yaml", []byte(tt.edited)); !errors.Is(err, ErrTampered) {
				t.Fatalf("DecryptDocument: %v, want ErrTampered", err)
			}
		})
	}
}

// ReadsOwnWay lets the package's external tests (which may use the test
// bed) check that a file is parsed and walked by this package, as sops'
// store and walk would.
func ReadsOwnWay(t *testing.T, s *SOPS, file []byte) bool {
	sameReading(t, file, true)
	return usesOwnWalk(t, s, file)
}
