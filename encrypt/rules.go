package encrypt

import (
	"fmt"
	"regexp"
	"strings"

	sops "github.com/getsops/sops/v3"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/azkv"
	"github.com/getsops/sops/v3/gcpkms"
	"github.com/getsops/sops/v3/hckms"
	"github.com/getsops/sops/v3/hcvault"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/kms"
	"github.com/getsops/sops/v3/pgp"
	goyaml "go.yaml.in/yaml/v3"
)

// The creation rules of .sops.yaml are read here from the bytes of the
// file. sops's config package reads rules only from a file on disk
// (config.LoadCreationRuleForFile takes a path), which meant a private
// copy of .sops.yaml in a temporary folder per pass that callers had to
// remember to remove. The types and the key-group construction below
// mirror sops v3.13.3 config/config.go (creationRule, keyGroup,
// getKeyGroupsFromCreationRule, configFromRule) and build the keys with
// sops's own constructors; TestRulesMatchSOPSConfig checks both give the
// same keys and settings.

// sopsConfigFile is the part of .sops.yaml certsync reads.
type sopsConfigFile struct {
	CreationRules []creationRule `yaml:"creation_rules"`
}

type creationRule struct {
	PathRegex               string     `yaml:"path_regex"`
	KMS                     any        `yaml:"kms"` // string or []string
	AwsProfile              string     `yaml:"aws_profile"`
	Age                     any        `yaml:"age"`     // string or []string
	PGP                     any        `yaml:"pgp"`     // string or []string
	GCPKMS                  any        `yaml:"gcp_kms"` // string or []string
	HCKms                   []string   `yaml:"hckms"`
	AzureKeyVault           any        `yaml:"azure_keyvault"`       // string or []string
	VaultURI                any        `yaml:"hc_vault_transit_uri"` // string or []string
	KeyGroups               []keyGroup `yaml:"key_groups"`
	ShamirThreshold         int        `yaml:"shamir_threshold"`
	UnencryptedSuffix       string     `yaml:"unencrypted_suffix"`
	EncryptedSuffix         string     `yaml:"encrypted_suffix"`
	UnencryptedRegex        string     `yaml:"unencrypted_regex"`
	EncryptedRegex          string     `yaml:"encrypted_regex"`
	UnencryptedCommentRegex string     `yaml:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string     `yaml:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool       `yaml:"mac_only_encrypted"`
}

type keyGroup struct {
	Merge   []keyGroup   `yaml:"merge"`
	KMS     []kmsKey     `yaml:"kms"`
	GCPKMS  []gcpKmsKey  `yaml:"gcp_kms"`
	HCKms   []hckmsKey   `yaml:"hckms"`
	AzureKV []azureKVKey `yaml:"azure_keyvault"`
	Vault   []string     `yaml:"hc_vault"`
	Age     []string     `yaml:"age"`
	PGP     []string     `yaml:"pgp"`
}

type gcpKmsKey struct {
	ResourceID string `yaml:"resource_id"`
}

type kmsKey struct {
	Arn        string             `yaml:"arn"`
	Role       string             `yaml:"role,omitempty"`
	Context    map[string]*string `yaml:"context"`
	AwsProfile string             `yaml:"aws_profile"`
}

type azureKVKey struct {
	VaultURL string `yaml:"vaultUrl"`
	Key      string `yaml:"key"`
	Version  string `yaml:"version"`
}

type hckmsKey struct {
	KeyID string `yaml:"key_id"`
}

// rule is one creation rule with its path_regex compiled.
type rule struct {
	index int
	re    *regexp.Regexp // nil: matches every path
	creationRule
}

// parseRules reads the creation rules of .sops.yaml.
func parseRules(conf []byte) ([]rule, error) {
	var f sopsConfigFile
	if err := goyaml.Unmarshal(conf, &f); err != nil {
		return nil, fmt.Errorf(".sops.yaml: %v", err)
	}
	rules := make([]rule, len(f.CreationRules))
	for i, cr := range f.CreationRules {
		rules[i] = rule{index: i, creationRule: cr}
		if cr.PathRegex == "" {
			continue
		}
		re, err := regexp.Compile(cr.PathRegex)
		if err != nil {
			return nil, fmt.Errorf(".sops.yaml: creation_rules[%d].path_regex: %v", i, err)
		}
		rules[i].re = re
	}
	return rules, nil
}

// describe names the rule for messages: its index and path_regex.
func (r *rule) describe() string {
	if r.PathRegex == "" {
		return fmt.Sprintf(".sops.yaml creation_rules[%d] (no path_regex: every file)", r.index)
	}
	return fmt.Sprintf(".sops.yaml creation_rules[%d] (path_regex %s)", r.index, r.PathRegex)
}

// selector returns the setting that decides which values are encrypted,
// as "name value"; "" when the rule sets none (certsync's default applies).
// sops allows at most one.
func (r *rule) selector() (string, error) {
	var set []string
	for _, s := range []struct{ name, value string }{
		{"unencrypted_suffix", r.UnencryptedSuffix},
		{"encrypted_suffix", r.EncryptedSuffix},
		{"unencrypted_regex", r.UnencryptedRegex},
		{"encrypted_regex", r.EncryptedRegex},
		{"unencrypted_comment_regex", r.UnencryptedCommentRegex},
		{"encrypted_comment_regex", r.EncryptedCommentRegex},
	} {
		if s.value != "" {
			set = append(set, s.name+" "+s.value)
		}
	}
	if len(set) > 1 {
		return "", fmt.Errorf("%s sets %s: sops allows only one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex, encrypted_comment_regex, unencrypted_comment_regex", r.describe(), strings.Join(set, " and "))
	}
	if len(set) == 0 {
		return "", nil
	}
	return set[0], nil
}

// metadata builds the sops metadata of one new file: fresh master keys
// (sops stores each file's encrypted data key on them, so they are never
// shared between files) and the rule's settings, or certsync's default
// encrypted_regex when the rule names no values.
func (r *rule) metadata() (sops.Metadata, error) {
	sel, err := r.selector()
	if err != nil {
		return sops.Metadata{}, err
	}
	groups, err := r.keyGroups()
	if err != nil {
		return sops.Metadata{}, fmt.Errorf("%s: %w", r.describe(), err)
	}
	if len(groups) == 0 || len(groups[0]) == 0 {
		return sops.Metadata{}, fmt.Errorf("%s names no keys", r.describe())
	}
	m := sops.Metadata{
		KeyGroups:               groups,
		ShamirThreshold:         r.ShamirThreshold,
		UnencryptedSuffix:       r.UnencryptedSuffix,
		EncryptedSuffix:         r.EncryptedSuffix,
		UnencryptedRegex:        r.UnencryptedRegex,
		EncryptedRegex:          r.EncryptedRegex,
		UnencryptedCommentRegex: r.UnencryptedCommentRegex,
		EncryptedCommentRegex:   r.EncryptedCommentRegex,
		MACOnlyEncrypted:        r.MACOnlyEncrypted,
	}
	if sel == "" {
		m.EncryptedRegex = DefaultEncryptedRegex
	}
	return m, nil
}

// keyGroups builds the rule's master keys as sops does.
func (r *rule) keyGroups() ([]sops.KeyGroup, error) {
	if len(r.KeyGroups) > 0 {
		var groups []sops.KeyGroup
		for _, g := range r.KeyGroups {
			kg, err := g.masterKeys()
			if err != nil {
				return nil, err
			}
			groups = append(groups, kg)
		}
		return groups, nil
	}
	var group sops.KeyGroup
	add := func(field any, name string, build func(csv string) ([]keys.MasterKey, error)) error {
		list, err := keyList(field, name)
		if err != nil {
			return err
		}
		ks, err := build(strings.Join(list, ","))
		if err != nil {
			return err
		}
		group = append(group, ks...)
		return nil
	}
	if err := add(r.Age, "age", func(csv string) ([]keys.MasterKey, error) {
		if csv == "" {
			return nil, nil
		}
		ks, err := sopsage.MasterKeysFromRecipients(csv)
		return asKeys(ks), err
	}); err != nil {
		return nil, err
	}
	if err := add(r.PGP, "pgp", func(csv string) ([]keys.MasterKey, error) {
		return asKeys(pgp.MasterKeysFromFingerprintString(csv)), nil
	}); err != nil {
		return nil, err
	}
	if err := add(r.KMS, "kms", func(csv string) ([]keys.MasterKey, error) {
		return asKeys(kms.MasterKeysFromArnString(csv, nil, r.AwsProfile)), nil
	}); err != nil {
		return nil, err
	}
	if err := add(r.GCPKMS, "gcp_kms", func(csv string) ([]keys.MasterKey, error) {
		return asKeys(gcpkms.MasterKeysFromResourceIDString(csv)), nil
	}); err != nil {
		return nil, err
	}
	hc, err := hckms.NewMasterKeyFromKeyIDString(strings.Join(r.HCKms, ","))
	if err != nil {
		return nil, err
	}
	group = append(group, asKeys(hc)...)
	if err := add(r.AzureKeyVault, "azure_keyvault", func(csv string) ([]keys.MasterKey, error) {
		ks, err := azkv.MasterKeysFromURLs(csv)
		return asKeys(ks), err
	}); err != nil {
		return nil, err
	}
	if err := add(r.VaultURI, "hc_vault_transit_uri", func(csv string) ([]keys.MasterKey, error) {
		ks, err := hcvault.NewMasterKeysFromURIs(csv)
		return asKeys(ks), err
	}); err != nil {
		return nil, err
	}
	return []sops.KeyGroup{group}, nil
}

func (g keyGroup) masterKeys() (sops.KeyGroup, error) {
	var group sops.KeyGroup
	for _, m := range g.Merge {
		sub, err := m.masterKeys()
		if err != nil {
			return nil, err
		}
		group = append(group, sub...)
	}
	for _, k := range g.Age {
		ks, err := sopsage.MasterKeysFromRecipients(k)
		if err != nil {
			return nil, err
		}
		group = append(group, asKeys(ks)...)
	}
	for _, k := range g.PGP {
		group = append(group, pgp.NewMasterKeyFromFingerprint(k))
	}
	for _, k := range g.KMS {
		group = append(group, kms.NewMasterKeyWithProfile(k.Arn, k.Role, k.Context, k.AwsProfile))
	}
	for _, k := range g.GCPKMS {
		group = append(group, gcpkms.NewMasterKeyFromResourceID(k.ResourceID))
	}
	for _, k := range g.HCKms {
		key, err := hckms.NewMasterKey(k.KeyID)
		if err != nil {
			return nil, err
		}
		group = append(group, key)
	}
	for _, k := range g.AzureKV {
		key, err := azkv.NewMasterKeyWithOptionalVersion(k.VaultURL, k.Key, k.Version)
		if err != nil {
			return nil, err
		}
		group = append(group, key)
	}
	for _, k := range g.Vault {
		key, err := hcvault.NewMasterKeyFromURI(k)
		if err != nil {
			return nil, err
		}
		group = append(group, key)
	}
	return dedupe(group), nil
}

// dedupe drops repeated keys of the same type, as sops does for key groups.
func dedupe(group sops.KeyGroup) sops.KeyGroup {
	var out sops.KeyGroup
	seen := map[string]bool{}
	for _, k := range group {
		id := fmt.Sprintf("%T/%v", k, k.ToString())
		if !seen[id] {
			seen[id] = true
			out = append(out, k)
		}
	}
	return out
}

// keyList reads a key field written as a comma-separated string or a list.
func keyList(field any, name string) ([]string, error) {
	switch v := field.(type) {
	case nil:
		return nil, nil
	case string:
		var out []string
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				out = append(out, k)
			}
		}
		return out, nil
	case []any:
		out := make([]string, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("invalid %s key configuration: expected string in list, got %T", name, item)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("invalid %s key configuration: expected string, []string, or nil, got %T", name, field)
}

func asKeys[K keys.MasterKey](ks []K) []keys.MasterKey {
	out := make([]keys.MasterKey, len(ks))
	for i, k := range ks {
		out[i] = k
	}
	return out
}
