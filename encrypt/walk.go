package encrypt

import (
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strings"
	"time"

	sops "github.com/getsops/sops/v3"
)

// Decrypting a file means walking its values: each value the file's
// settings mark as encrypted is decrypted, and every value (or, with
// mac_only_encrypted, every encrypted one) goes into the MAC. sops'
// Tree.Decrypt does this with regexp.Match, which compiles encrypted_regex
// again for every path element of every value: about a hundred times per
// certsync Secret, a third of the CPU of a restore. decryptValues walks
// the same way with each expression compiled once per file.
//
// It needs no trust of its own: Decrypt accepts what it produced only when
// its MAC equals the file's MAC, which only the holder of the data key can
// have written, and otherwise gives the file to sops' own walk. Files with
// features it leaves to sops (comments, comment regexes, unknown value
// types) go there directly.

// errLeaveToSOPS stops decryptValues; the caller walks the file again with
// sops.Tree.Decrypt, whose answer (result or error) is authoritative.
var errLeaveToSOPS = errors.New("left to sops' own walk")

// valueWalk decrypts one tree.
type valueWalk struct {
	meta                   *sops.Metadata
	encrypted, unencrypted *regexp.Regexp
	key                    []byte
	cipher                 sops.Cipher
	mac                    hash.Hash
}

// decryptValues decrypts tree's values in place and returns the MAC over
// them, formatted as sops formats it, or errLeaveToSOPS.
func decryptValues(tree *sops.Tree, key []byte, cipher sops.Cipher) (string, error) {
	m := &tree.Metadata
	if m.EncryptedCommentRegex != "" || m.UnencryptedCommentRegex != "" {
		return "", errLeaveToSOPS
	}
	w := &valueWalk{meta: m, key: key, cipher: cipher, mac: sha512.New()}
	var err error
	if m.EncryptedRegex != "" {
		if w.encrypted, err = regexp.Compile(m.EncryptedRegex); err != nil {
			return "", errLeaveToSOPS
		}
	}
	if m.UnencryptedRegex != "" {
		if w.unencrypted, err = regexp.Compile(m.UnencryptedRegex); err != nil {
			return "", errLeaveToSOPS
		}
	}
	if m.MACOnlyEncrypted {
		w.mac.Write(sops.MACOnlyEncryptedInitialization)
	}
	for _, branch := range tree.Branches {
		if _, err := w.branch(branch, make([]string, 0, 4)); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%X", w.mac.Sum(nil)), nil
}

func (w *valueWalk) value(in any, path []string) (any, error) {
	switch v := in.(type) {
	case sops.TreeBranch:
		return w.branch(v, path)
	case []any:
		for i := range v {
			out, err := w.value(v[i], path)
			if err != nil {
				return nil, err
			}
			v[i] = out
		}
		return v, nil
	case nil:
		return nil, nil
	case []byte:
		return w.leaf(string(v), path)
	case string, int, bool, float64, time.Time:
		return w.leaf(v, path)
	}
	// Comments, and types sops itself refuses.
	return nil, errLeaveToSOPS
}

func (w *valueWalk) branch(b sops.TreeBranch, path []string) (sops.TreeBranch, error) {
	for i, item := range b {
		key, ok := item.Key.(string)
		if !ok {
			return nil, errLeaveToSOPS
		}
		out, err := w.value(item.Value, append(path, key))
		if err != nil {
			return nil, err
		}
		b[i].Value = out
	}
	return b, nil
}

func (w *valueWalk) leaf(in any, path []string) (any, error) {
	encrypted := w.isEncrypted(path)
	out := in
	if encrypted {
		s, ok := in.(string)
		if !ok {
			return nil, errLeaveToSOPS
		}
		var err error
		if out, err = w.cipher.Decrypt(s, w.key, strings.Join(path, ":")+":"); err != nil {
			return nil, errLeaveToSOPS
		}
	}
	if w.meta.MACOnlyEncrypted && !encrypted {
		return out, nil
	}
	if _, isComment := out.(sops.Comment); isComment {
		return nil, errLeaveToSOPS
	}
	b, err := sops.ToBytes(out)
	if err != nil {
		return nil, errLeaveToSOPS
	}
	w.mac.Write(b)
	return out, nil
}

// isEncrypted decides as sops does from the file's settings, each later
// setting overriding the earlier ones: a value is encrypted unless a path
// element ends with unencrypted_suffix; with encrypted_suffix only if one
// ends with it; not if one matches unencrypted_regex; with encrypted_regex
// only if one matches it.
func (w *valueWalk) isEncrypted(path []string) bool {
	encrypted := true
	if s := w.meta.UnencryptedSuffix; s != "" && anyElement(path, func(p string) bool { return strings.HasSuffix(p, s) }) {
		encrypted = false
	}
	if s := w.meta.EncryptedSuffix; s != "" {
		encrypted = anyElement(path, func(p string) bool { return strings.HasSuffix(p, s) })
	}
	if w.unencrypted != nil && anyElement(path, w.unencrypted.MatchString) {
		encrypted = false
	}
	if w.encrypted != nil {
		encrypted = anyElement(path, w.encrypted.MatchString)
	}
	return encrypted
}

func anyElement(path []string, match func(string) bool) bool {
	for _, p := range path {
		if match(p) {
			return true
		}
	}
	return false
}

// documentOf turns a decrypted document into nested maps and lists.
// Comments are dropped; a repeated key is refused (a YAML parser would
// refuse it too, and which value wins is not something to guess about).
func documentOf(b sops.TreeBranch) (map[string]any, error) {
	out := make(map[string]any, len(b))
	for _, item := range b {
		if _, ok := item.Key.(sops.Comment); ok {
			continue
		}
		key, ok := item.Key.(string)
		if !ok {
			return nil, fmt.Errorf("a key is a %T, not a string", item.Key)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		v, err := plainValue(item.Value)
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
	return out, nil
}

func plainValue(in any) (any, error) {
	switch v := in.(type) {
	case sops.TreeBranch:
		return documentOf(v)
	case []any:
		out := make([]any, 0, len(v))
		for _, e := range v {
			if _, ok := e.(sops.Comment); ok {
				continue
			}
			pv, err := plainValue(e)
			if err != nil {
				return nil, err
			}
			out = append(out, pv)
		}
		return out, nil
	}
	return in, nil
}
