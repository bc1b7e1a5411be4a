package encrypt_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/certsync/certsync/encrypt"
)

func TestRuleErrors(t *testing.T) {
	k := newKey(t)
	tests := []struct {
		name, conf, want string
		atNew            bool
	}{
		{"bad path_regex", "creation_rules:\n  - path_regex: '('\n    age: " + k.recipient() + "\n", "creation_rules[0].path_regex", true},
		{"not YAML", "creation_rules: [", ".sops.yaml", true},
		{"two selectors", "creation_rules:\n  - age: " + k.recipient() + "\n    encrypted_regex: ^data$\n    unencrypted_suffix: _x\n", "sops allows only one", false},
		{"no keys", "creation_rules:\n  - path_regex: ^secrets/\n", "names no keys", false},
		{"bad age key", "creation_rules:\n  - age: age1notakey\n", "creation_rules[0]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := encrypt.New(encrypt.Config{SOPSConfig: []byte(tt.conf)})
			if !tt.atNew {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				_, err = s.Encrypt(context.Background(), "secrets/a/b/c.yaml", []byte(secretYAML))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestNoTempFiles: reading .sops.yaml and encrypting leave nothing on disk,
// whether or not the caller closes the SOPS.
func TestNoTempFiles(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	k := newKey(t)
	for range 3 {
		s, err := encrypt.New(encrypt.Config{SOPSConfig: sopsConfig(ruleYAML(`^secrets/`, k.recipient(), "")), AgeIdentities: []byte(k.id.String())})
		if err != nil {
			t.Fatal(err)
		}
		enc, err := s.Encrypt(context.Background(), "secrets/default/shop/web-tls.yaml", []byte(secretYAML))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Decrypt(context.Background(), "secrets/default/shop/web-tls.yaml", enc); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("left in the temporary folder: %v", entries)
	}
}
