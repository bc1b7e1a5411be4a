package encrypt

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	sops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/config"
)

// TestRulesMatchSOPSConfig checks that certsync's reading of .sops.yaml
// (from bytes) gives the keys and settings sops's own config package
// gives (from a file) for the same rule.
func TestRulesMatchSOPSConfig(t *testing.T) {
	a, b := recipient(t), recipient(t)
	const arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	const gcp = "projects/p/locations/global/keyRings/r/cryptoKeys/k"
	const vault = "https://vault.example.com:8200/v1/transit/keys/certsync"
	const azure = "https://certsync.vault.azure.net/keys/sops/0123456789abcdef"
	tests := []struct {
		name, rule string
	}{
		{"age string", "age: " + a},
		{"age comma list", "age: " + a + ", " + b + ","},
		{"age list", "age:\n      - " + a + "\n      - " + b},
		{"pgp", "pgp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"},
		{"kms with profile", "kms: " + arn + "\n    aws_profile: prod"},
		{"gcp, vault, azure", "gcp_kms: " + gcp + "\n    hc_vault_transit_uri: " + vault + "\n    azure_keyvault: " + azure},
		{"hckms", "hckms: [\"cn-north-4:0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\"]"},
		{"encrypted_regex", "age: " + a + "\n    encrypted_regex: ^data$"},
		{"unencrypted_suffix and mac_only_encrypted", "age: " + a + "\n    unencrypted_suffix: _clear\n    mac_only_encrypted: true"},
		{"key groups with merge", `key_groups:
      - age: [` + a + `]
        merge:
          - age: [` + b + `, ` + a + `]
        kms:
          - arn: ` + arn + `
            role: arn:aws:iam::111122223333:role/sops
            context: {team: web}
      - pgp: [FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4]
    shamir_threshold: 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := []byte("creation_rules:\n  - path_regex: ^other/\n    age: " + b + "\n  - path_regex: ^secrets/\n    " + tt.rule + "\n")
			dir := t.TempDir()
			confPath := filepath.Join(dir, ".sops.yaml")
			if err := os.WriteFile(confPath, conf, 0o600); err != nil {
				t.Fatal(err)
			}
			const path = "secrets/default/shop/web-tls.yaml"
			want, err := config.LoadCreationRuleForFile(confPath, path, nil)
			if err != nil {
				t.Fatalf("sops: %v", err)
			}
			s, err := New(Config{SOPSConfig: conf})
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.rule(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.metadata()
			if err != nil {
				t.Fatal(err)
			}
			if r.index != 1 {
				t.Errorf("matched rule %d, want 1", r.index)
			}
			if g, w := groups(got.KeyGroups), groups(want.KeyGroups); g != w {
				t.Errorf("key groups:\n got %s\nwant %s", g, w)
			}
			wantRegex := want.EncryptedRegex
			if want.UnencryptedSuffix+want.EncryptedSuffix+want.UnencryptedRegex+want.EncryptedRegex+want.UnencryptedCommentRegex+want.EncryptedCommentRegex == "" {
				wantRegex = DefaultEncryptedRegex
			}
			if got.ShamirThreshold != want.ShamirThreshold || got.UnencryptedSuffix != want.UnencryptedSuffix ||
				got.EncryptedRegex != wantRegex || got.MACOnlyEncrypted != want.MACOnlyEncrypted {
				t.Errorf("settings differ: got %+v, sops %+v", got, want)
			}
		})
	}
}

// groups describes key groups as type:id lists, for comparison.
func groups(gs []sops.KeyGroup) string {
	var out []string
	for _, g := range gs {
		var ks []string
		for _, k := range g {
			ks = append(ks, fmt.Sprintf("%s:%s", k.TypeToIdentifier(), k.ToString()))
		}
		out = append(out, "["+strings.Join(ks, " ")+"]")
	}
	return strings.Join(out, " ")
}

func recipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}
