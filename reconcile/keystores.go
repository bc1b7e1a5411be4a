package reconcile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"

	yaml "go.yaml.in/yaml/v3"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/render"
)

// keystorePasswords resolves the passwords of the keystores c creates
// (spec.keystores): the literal password, or the key of a Secret in the
// Certificate's namespace, read as issuers read theirs (secrets: a
// SOPS-encrypted Secret in the repository, or the cluster when the
// operator allows it), as cert-manager reads it from the Certificate's
// namespace. Errors name the Secret and key, never a value; an empty
// value wraps issuer.ErrPermanent, as does a missing Secret.
func keystorePasswords(ctx context.Context, secrets issuer.SecretGetter, c *declared.Certificate) (render.Passwords, error) {
	var out render.Passwords
	read := func(kind string, pw declared.KeystorePassword) ([]byte, error) {
		if pw.SecretRef.Name == "" {
			return []byte(pw.Literal), nil
		}
		ref := pw.SecretRef
		v, err := secrets.SecretKey(ctx, c.Namespace, ref.Name, ref.Key)
		if err != nil {
			return nil, fmt.Errorf("%s keystore password: %w", kind, err)
		}
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: %s keystore password Secret %s/%s contains no data for key %q", issuer.ErrPermanent, kind, c.Namespace, ref.Name, ref.Key)
		}
		return v, nil
	}
	var err error
	if k := c.Keystores.PKCS12; k != nil && k.Create {
		if out.PKCS12, err = read("PKCS12", k.Password); err != nil {
			return out, err
		}
	}
	if k := c.Keystores.JKS; k != nil && k.Create {
		if out.JKS, err = read("JKS", k.Password); err != nil {
			return out, err
		}
	}
	return out, nil
}

// createdPasswords are the password sources of the keystores c creates,
// PKCS#12 first.
func createdPasswords(c *declared.Certificate) []declared.KeystorePassword {
	var out []declared.KeystorePassword
	if k := c.Keystores.PKCS12; k != nil && k.Create {
		out = append(out, k.Password)
	}
	if k := c.Keystores.JKS; k != nil && k.Create {
		out = append(out, k.Password)
	}
	return out
}

// keystorePasswordHashes computes State.KeystorePasswords: for each
// Certificate whose keystores read their password from a SOPS-encrypted
// Secret of the repository, a digest of those values' ciphertexts as
// committed. The ciphertext is in Git for anyone to read already; a
// digest of the password itself would let a weak one be guessed offline
// from the Secret's plaintext annotations. A new password is a new
// ciphertext, so the keystores are rendered again; so is the same
// password encrypted anew (sops rotate, sops edit), which re-renders them
// once with the password they had. A password from the manifest is in
// OutputsHash already, one from the cluster is not tracked.
func keystorePasswordHashes(tree Tree, set *declared.Set, certs []declared.Certificate) map[string]string {
	out := map[string]string{}
	r := ciphertextReader{tree: tree, set: set}
	for i := range certs {
		c := &certs[i]
		h := sha256.New()
		found := false
		for _, pw := range createdPasswords(c) {
			ref := pw.SecretRef
			if ref.Name == "" {
				continue
			}
			v, ok := r.ciphertext(c.Namespace, ref.Name, ref.Key)
			if !ok {
				continue
			}
			found = true
			h.Write([]byte(c.Namespace + "/" + ref.Name + "/" + ref.Key + "\x00" + v + "\x00"))
		}
		if found {
			out[c.Key()] = hex.EncodeToString(h.Sum(nil)[:8])
		}
	}
	return out
}

// secretCiphertexts is one Secret of a SOPS-encrypted file, with its
// values as committed (ciphertexts), stringData over data as
// passSecrets.SecretKey reads them.
type secretCiphertexts struct {
	namespace, name string
	values          map[string]string
}

// ciphertextReader finds the committed values of repository Secrets
// without decrypting them, reading each file once.
type ciphertextReader struct {
	tree  Tree
	set   *declared.Set
	files map[string]string // "namespace/name" → file, built on first use
	read  map[string][]secretCiphertexts
}

// ciphertext is the committed value of key in the repository Secret
// namespace/name. ok is false when there is no such Secret or key, or its
// file does not parse: the render then fails and says why.
func (r *ciphertextReader) ciphertext(namespace, name, key string) (string, bool) {
	if r.files == nil {
		r.files, r.read = map[string]string{}, map[string][]secretCiphertexts{}
		for _, s := range r.set.Secrets {
			r.files[s.Key()] = s.Source.File // unique: declared.Set.checkSecrets
		}
	}
	path, found := r.files[namespace+"/"+name]
	if !found {
		return "", false
	}
	secrets, done := r.read[path]
	if !done {
		secrets = readCiphertexts(r.tree, path)
		r.read[path] = secrets
	}
	for _, s := range secrets {
		if s.namespace == namespace && s.name == name {
			v, ok := s.values[key]
			return v, ok
		}
	}
	return "", false
}

// readCiphertexts reads the Secrets of one file without decrypting them.
func readCiphertexts(tree Tree, path string) []secretCiphertexts {
	content, err := tree.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []secretCiphertexts
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for {
		var doc struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
			Data       map[string]string `yaml:"data"`
			StringData map[string]string `yaml:"stringData"`
		}
		if err := dec.Decode(&doc); err != nil {
			return out // io.EOF, or a document this reader does not know: what was read stands
		}
		if doc.Kind != "Secret" {
			continue
		}
		s := secretCiphertexts{namespace: doc.Metadata.Namespace, name: doc.Metadata.Name, values: map[string]string{}}
		if s.namespace == "" {
			s.namespace = "default"
		}
		maps.Copy(s.values, doc.Data)
		maps.Copy(s.values, doc.StringData)
		out = append(out, s)
	}
}
