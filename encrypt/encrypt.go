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
//
// # Keys never reach Git in the clear
//
// A creation rule can tell sops to leave values alone (encrypted_regex
// ^nothing$, an unencrypted_regex matching data, …). Encrypt checks what it
// emitted and refuses, with ErrPlaintext, to return a file that holds any
// value under data or stringData that is not a SOPS ciphertext; the error
// names the keys and the rule to fix, never the values.
package encrypt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
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

	"github.com/certsync/certsync/committed"
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
	// ErrPlaintext: the matching creation rule would leave data or
	// stringData unencrypted; Encrypt returns no output. A configuration
	// error: retrying does not help until .sops.yaml changes.
	ErrPlaintext = errors.New("refusing to write secret data in plaintext")
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
	hasConfig  bool
	rules      []rule
	identities sopsage.ParsedIdentities
	log        *slog.Logger

	mu         sync.Mutex
	recipients map[int][]string // by rule index
}

var quietOnce sync.Once

// New parses the identities and the creation rules once. It touches no
// file: .sops.yaml is read from cfg.SOPSConfig.
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
	rules, err := parseRules(cfg.SOPSConfig)
	if err != nil {
		return nil, err
	}
	s.hasConfig, s.rules = true, rules
	return s, nil
}

// Close releases nothing: .sops.yaml is held in memory. It remains so
// that callers may treat a SOPS as a closable resource.
func (s *SOPS) Close() error { return nil }

// rule returns the first creation rule matching path, as sops picks it,
// or ErrNoRule.
func (s *SOPS) rule(path string) (*rule, error) {
	for i := range s.rules {
		if r := &s.rules[i]; r.re == nil || r.re.MatchString(path) {
			return r, nil
		}
	}
	if !s.hasConfig {
		return nil, fmt.Errorf("%s: %w: the repository has no .sops.yaml; add one with a creation rule (path_regex: ^secrets/.*\\.yaml$ and your age recipients)", path, ErrNoRule)
	}
	return nil, fmt.Errorf("%s: %w matches it in .sops.yaml; add a rule whose path_regex matches", path, ErrNoRule)
}

// RuleIndex is the position in .sops.yaml of the creation rule that
// encrypts path (the first whose path_regex matches): files under one
// rule are encrypted alike.
func (s *SOPS) RuleIndex(path string) (int, error) {
	r, err := s.rule(path)
	if err != nil {
		return 0, err
	}
	return r.index, nil
}

// Encrypt encrypts plaintext YAML for the file at path (slash-separated,
// relative to the repository root).
func (s *SOPS) Encrypt(ctx context.Context, path string, plaintext []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := s.rule(path)
	if err != nil {
		return nil, err
	}
	meta, err := r.metadata()
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", path, err)
	}
	meta.Version = version.Version
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
	// Check what will be committed, not what sops was asked to do.
	exposed, err := committed.Exposed(path, out)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: check the output: %w", path, err)
	}
	if len(exposed) > 0 {
		sel, _ := r.selector()
		return nil, &plaintextError{path: path, keys: exposed, rule: r.describe(), selector: sel}
	}
	return out, nil
}

// plaintextError is ErrPlaintext with what to fix.
type plaintextError struct {
	path     string
	keys     []string // "data.tls.key"
	rule     string   // which creation rule
	selector string   // the setting that left them alone, "" for none
}

func (e *plaintextError) Error() string {
	why := "leaves them unencrypted"
	if e.selector != "" {
		why = "sets " + e.selector
	}
	return fmt.Sprintf("encrypt %s: refusing to write %s in plaintext: %s %s; data and stringData must be encrypted — fix the rule",
		e.path, strings.Join(e.keys, ", "), e.rule, why)
}

func (e *plaintextError) Unwrap() error { return ErrPlaintext }

// Decrypt decrypts a file written by Encrypt or by the sops CLI and checks
// its MAC. Errors name the path and never quote plaintext.
func (s *SOPS) Decrypt(ctx context.Context, path string, encrypted []byte) ([]byte, error) {
	store := yamlstore.NewStore(&config.YAMLStoreConfig{})
	tree, err := s.open(ctx, store, path, encrypted)
	if err != nil {
		return nil, err
	}
	out, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: write plaintext: %v", path, err)
	}
	return out, nil
}

// DecryptDocument is Decrypt for a caller that wants the values rather
// than YAML text: the file's one document as nested maps and lists, as
// encoding/json would decode it. It saves writing the plaintext out only
// to parse it again (two thirds of the remaining cost of a restore).
func (s *SOPS) DecryptDocument(ctx context.Context, path string, encrypted []byte) (map[string]any, error) {
	tree, err := s.open(ctx, yamlstore.NewStore(&config.YAMLStoreConfig{}), path, encrypted)
	if err != nil {
		return nil, err
	}
	if len(tree.Branches) != 1 {
		return nil, fmt.Errorf("decrypt %s: the file holds %d documents; a committed Secret is one", path, len(tree.Branches))
	}
	doc, err := documentOf(tree.Branches[0])
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", path, err)
	}
	return doc, nil
}

// open loads an encrypted file and decrypts its values in place, with the
// MAC checked.
func (s *SOPS) open(ctx context.Context, store *yamlstore.Store, path string, encrypted []byte) (*sops.Tree, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tree, err := loadEncrypted(encrypted)
	if err != nil {
		tree, err = store.LoadEncryptedFile(encrypted)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w: not a readable SOPS file (%v)", path, ErrTampered, err)
	}
	dataKey, err := s.dataKey(&tree)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", path, err)
	}
	cipher := aes.NewCipher()
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", path, ErrTampered)
	}
	if mac, err := decryptValues(&tree, dataKey, cipher); err == nil && mac == stored {
		return &tree, nil
	}
	// sops' own walk decides, on a fresh copy: the one above changed
	// values in place.
	if tree, err = store.LoadEncryptedFile(encrypted); err != nil {
		return nil, fmt.Errorf("decrypt %s: %w: not a readable SOPS file (%v)", path, ErrTampered, err)
	}
	if mac, err := tree.Decrypt(dataKey, cipher); err != nil || mac != stored {
		return nil, fmt.Errorf("decrypt %s: %w", path, ErrTampered)
	}
	return &tree, nil
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
				if key, err := openAgeDataKey(ak.EncryptedKey, s.identities); err == nil {
					return key, nil
				}
				continue
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
	r, err := s.rule(path)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	cached, ok := s.recipients[r.index]
	s.mu.Unlock()
	if ok {
		return cached, nil
	}
	groups, err := r.keyGroups()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, r.describe(), err)
	}
	var out []string
	for _, g := range groups {
		for _, k := range g {
			if d := describe(k.TypeToIdentifier(), k.ToString()); d != "" {
				out = append(out, d)
			}
		}
	}
	sort.Strings(out)
	s.mu.Lock()
	s.recipients[r.index] = out
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
