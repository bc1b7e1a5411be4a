// Package encrypt writes and reads SOPS-encrypted manifests exactly as the
// sops CLI does, so that `sops --decrypt` and Flux's kustomize-controller
// read what certsync wrote.
//
// The repository's .sops.yaml decides, per path, who can decrypt a file
// (creation_rules with path_regex). When the matching rule does not say
// which values to encrypt, certsync uses Flux's convention,
// encrypted_regex ^(data|stringData)$: Kubernetes metadata stays readable
// for planning and review, and SOPS's MAC still covers it.
//
// sops has no public encryption API; this package follows the CLI's own
// path (cmd/sops encrypt: load plain file → tree with the rule's key groups
// → data key from the local key service → Tree.Encrypt → MAC encrypted with
// LastModified as additional data → emit). Decryption applies the age
// identities given in Config to each age master key, so nothing depends on
// the process environment.
package encrypt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	sops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/logging"
	yamlstore "github.com/getsops/sops/v3/stores/yaml"
	"github.com/getsops/sops/v3/version"
	"github.com/sirupsen/logrus"
	goyaml "go.yaml.in/yaml/v3"
)

// DefaultEncryptedRegex is used when a creation rule names no values to
// encrypt: Flux's convention for Kubernetes Secrets.
const DefaultEncryptedRegex = "^(data|stringData)$"

var (
	// ErrNoKey: none of the configured identities can open the file.
	ErrNoKey = errors.New("no decryption key for this file")
	// ErrTampered: the file's MAC does not match its content, or a value
	// cannot be decrypted: it was edited outside SOPS.
	ErrTampered = errors.New("file was modified outside SOPS (MAC mismatch)")
	// ErrNoRule: .sops.yaml has no creation rule for the path.
	ErrNoRule = errors.New("no SOPS creation rule")
)

// Config configures a SOPS.
type Config struct {
	// SOPSConfig is the content of the repository's .sops.yaml; nil when
	// the repository has none (then Encrypt fails, Decrypt works).
	SOPSConfig []byte
	// AgeIdentities is the text of age identity files (AGE-SECRET-KEY-1…
	// lines; comments allowed). Empty: Decrypt fails with ErrNoKey.
	AgeIdentities []byte
	// Logger may be nil.
	Logger *slog.Logger
}

// SOPS encrypts and decrypts YAML files. It is safe for concurrent use.
type SOPS struct {
	dir        string // holds a copy of .sops.yaml: sops reads rules from disk
	confPath   string
	rules      []*regexp.Regexp // path_regex of each creation rule, nil = matches all
	identities sopsage.ParsedIdentities
	log        *slog.Logger

	mu         sync.Mutex
	recipients map[int][]string // by rule index
}

var quietOnce sync.Once

// New parses the identities and the creation rules once.
func New(cfg Config) (*SOPS, error) {
	// sops logs through logrus at Info for every key operation; certsync
	// reports what matters itself. This is process-wide, hence once.
	quietOnce.Do(func() { logging.SetLevel(logrus.ErrorLevel) })
	s := &SOPS{log: cfg.Logger, recipients: map[int][]string{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.AgeIdentities) > 0 {
		if err := s.identities.Import(string(cfg.AgeIdentities)); err != nil {
			// The parse error could quote the key material: do not wrap it.
			return nil, errors.New("age identities: not a valid age identity file (want AGE-SECRET-KEY-1… lines)")
		}
	}
	if cfg.SOPSConfig == nil {
		return s, nil
	}
	var conf struct {
		CreationRules []struct {
			PathRegex string `yaml:"path_regex"`
		} `yaml:"creation_rules"`
	}
	if err := goyaml.Unmarshal(cfg.SOPSConfig, &conf); err != nil {
		return nil, fmt.Errorf(".sops.yaml: %v", err)
	}
	for i, r := range conf.CreationRules {
		if r.PathRegex == "" {
			s.rules = append(s.rules, nil)
			continue
		}
		re, err := regexp.Compile(r.PathRegex)
		if err != nil {
			return nil, fmt.Errorf(".sops.yaml: creation_rules[%d].path_regex: %v", i, err)
		}
		s.rules = append(s.rules, re)
	}
	dir, err := os.MkdirTemp("", "certsync-sops-")
	if err != nil {
		return nil, err
	}
	s.dir, s.confPath = dir, filepath.Join(dir, ".sops.yaml")
	if err := os.WriteFile(s.confPath, cfg.SOPSConfig, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Close removes the private copy of .sops.yaml.
func (s *SOPS) Close() error {
	if s.dir == "" {
		return nil
	}
	return os.RemoveAll(s.dir)
}

// rule returns the index of the first creation rule matching path, as
// sops picks it, or ErrNoRule.
func (s *SOPS) rule(path string) (int, error) {
	for i, re := range s.rules {
		if re == nil || re.MatchString(path) {
			return i, nil
		}
	}
	if s.confPath == "" {
		return -1, fmt.Errorf("%s: %w: the repository has no .sops.yaml; add one with a creation rule (path_regex: ^secrets/.*\\.yaml$ and your age recipients)", path, ErrNoRule)
	}
	return -1, fmt.Errorf("%s: %w matches it in .sops.yaml; add a rule whose path_regex matches", path, ErrNoRule)
}

// load reads the creation rule for path with fresh master keys: sops
// stores each file's encrypted data key on the key objects, so they cannot
// be shared between files.
func (s *SOPS) load(path string) (*config.Config, error) {
	if _, err := s.rule(path); err != nil {
		return nil, err
	}
	conf, err := config.LoadCreationRuleForFile(s.confPath, path, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: .sops.yaml: %w", path, err)
	}
	if conf == nil || len(conf.KeyGroups) == 0 {
		return nil, fmt.Errorf("%s: the matching .sops.yaml rule names no keys", path)
	}
	return conf, nil
}

// Encrypt encrypts plaintext YAML for the file at path (slash-separated,
// relative to the repository root).
func (s *SOPS) Encrypt(ctx context.Context, path string, plaintext []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conf, err := s.load(path)
	if err != nil {
		return nil, err
	}
	meta := sops.Metadata{
		KeyGroups:               conf.KeyGroups,
		ShamirThreshold:         conf.ShamirThreshold,
		UnencryptedSuffix:       conf.UnencryptedSuffix,
		EncryptedSuffix:         conf.EncryptedSuffix,
		UnencryptedRegex:        conf.UnencryptedRegex,
		EncryptedRegex:          conf.EncryptedRegex,
		UnencryptedCommentRegex: conf.UnencryptedCommentRegex,
		EncryptedCommentRegex:   conf.EncryptedCommentRegex,
		MACOnlyEncrypted:        conf.MACOnlyEncrypted,
		Version:                 version.Version,
	}
	if meta.UnencryptedSuffix == "" && meta.EncryptedSuffix == "" && meta.UnencryptedRegex == "" &&
		meta.EncryptedRegex == "" && meta.UnencryptedCommentRegex == "" && meta.EncryptedCommentRegex == "" {
		meta.EncryptedRegex = DefaultEncryptedRegex
	}
	store := yamlstore.NewStore(&config.YAMLStoreConfig{})
	branches, err := store.LoadPlainFile(plaintext)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: the manifest is not valid YAML", path)
	}
	if len(branches) == 0 {
		return nil, fmt.Errorf("encrypt %s: empty manifest", path)
	}
	tree := sops.Tree{Branches: branches, Metadata: meta, FilePath: path}
	dataKey, errs := tree.GenerateDataKeyWithKeyServices([]keyservice.KeyServiceClient{keyservice.NewLocalClient()})
	if len(errs) > 0 {
		return nil, fmt.Errorf("encrypt %s: encrypt the data key for the recipients of .sops.yaml: %v", path, errs)
	}
	if err := common.EncryptTree(common.EncryptTreeOpts{DataKey: dataKey, Tree: &tree, Cipher: aes.NewCipher()}); err != nil {
		return nil, fmt.Errorf("encrypt %s: %v", path, err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: write: %v", path, err)
	}
	return out, nil
}

// Decrypt decrypts a file written by Encrypt or by the sops CLI and checks
// its MAC. Errors name the path and never quote plaintext.
func (s *SOPS) Decrypt(ctx context.Context, path string, encrypted []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	store := yamlstore.NewStore(&config.YAMLStoreConfig{})
	tree, err := store.LoadEncryptedFile(encrypted)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w: not a readable SOPS file (%v)", path, ErrTampered, err)
	}
	dataKey, err := s.dataKey(&tree)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", path, err)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(dataKey, cipher)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", path, ErrTampered)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || stored != mac {
		return nil, fmt.Errorf("decrypt %s: %w", path, ErrTampered)
	}
	out, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: write plaintext: %v", path, err)
	}
	return out, nil
}

// dataKey opens the file's data key with the configured age identities
// (or, for other key types, their own credentials).
func (s *SOPS) dataKey(tree *sops.Tree) ([]byte, error) {
	if len(tree.Metadata.KeyGroups) > 1 {
		return nil, errors.New("files with several key groups (Shamir) are not supported by certsync yet")
	}
	var recipients []string
	for _, group := range tree.Metadata.KeyGroups {
		for _, k := range group {
			recipients = append(recipients, k.ToString())
			if ak, ok := k.(*sopsage.MasterKey); ok {
				if len(s.identities) == 0 {
					continue
				}
				s.identities.ApplyToMasterKey(ak)
			}
			if key, err := k.Decrypt(); err == nil {
				return key, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: it is encrypted to %v; provide a matching age identity (--age-key-file or SOPS_AGE_KEY_FILE)", ErrNoKey, recipients)
}

// Recipients returns the sorted recipients the creation rule for path asks
// for, in the form FileRecipients reports.
func (s *SOPS) Recipients(path string) ([]string, error) {
	i, err := s.rule(path)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cached, ok := s.recipients[i]
	s.mu.Unlock()
	if ok {
		return cached, nil
	}
	conf, err := s.load(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range conf.KeyGroups {
		for _, k := range g {
			if d := describe(k.TypeToIdentifier(), k.ToString()); d != "" {
				out = append(out, d)
			}
		}
	}
	sort.Strings(out)
	s.mu.Lock()
	s.recipients[i] = out
	s.mu.Unlock()
	return out, nil
}

// describe names a key as the committed package reads it from a file's
// metadata: age recipients bare, PGP fingerprints prefixed. Cloud KMS keys
// are left out: their string forms differ between .sops.yaml and a file's
// metadata, and a false difference would re-encrypt on every pass.
func describe(typ, id string) string {
	switch typ {
	case "age":
		return id
	case "pgp":
		return "pgp:" + id
	}
	return ""
}
