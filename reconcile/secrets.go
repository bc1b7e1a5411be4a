package reconcile

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/render"
)

// SecretReader is the optional capability of a Cluster that reads a
// Secret's data. With Config.IssuerSecretsFromCluster, issuers whose
// credentials are not in the repository look for them in the cluster, as
// cert-manager would.
type SecretReader interface {
	SecretData(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// passSecrets resolves the Secrets issuer manifests refer to for one pass:
// the *SecretRef fields (DNS-01 credentials, EAB keys) and a `ca` issuer's
// key pair (spec.ca.secretName). The repository is data: a credential is
// a SOPS-encrypted Secret committed next to the issuer and decrypted with
// the agent's own key, never an environment variable the manifest names;
// a CA's key pair is such a Secret too, or one of certsync's own committed
// TLS Secrets (an isCA Certificate it issued). Each file is decrypted at
// most once per pass, and only when an issuer asks for it.
type passSecrets struct {
	p *pass
	// cluster is consulted when the repository has no such Secret; nil
	// unless the operator allowed it.
	cluster SecretReader

	mu    sync.Mutex
	files map[string]*decryptedFile
}

type decryptedFile struct {
	once    sync.Once
	secrets []*corev1.Secret
	err     error
}

var _ issuer.SecretGetter = (*passSecrets)(nil)

// passSecrets resolves Secrets for pass p: from the repository, and
// from the cluster when the operator allows it.
func (r *Reconciler) passSecrets(p *pass) *passSecrets {
	var fromCluster SecretReader
	if r.cfg.IssuerSecretsFromCluster {
		fromCluster, _ = r.cfg.Cluster.(SecretReader)
	}
	return newPassSecrets(p, fromCluster)
}

func newPassSecrets(p *pass, cluster SecretReader) *passSecrets {
	return &passSecrets{p: p, cluster: cluster, files: map[string]*decryptedFile{}}
}

// SecretKey returns one key of the Secret namespace/name. Errors name the
// Secret and the key, never a value, and say where to put the Secret.
func (s *passSecrets) SecretKey(ctx context.Context, namespace, name, key string) ([]byte, error) {
	for _, decl := range s.p.set.Secrets {
		if decl.Namespace != namespace || decl.Name != name {
			continue
		}
		secrets, err := s.decrypt(ctx, decl.Source.File)
		if err != nil {
			return nil, fmt.Errorf("Secret %s/%s (%s): %w", namespace, name, decl.Source, err)
		}
		for _, sec := range secrets {
			if sec.Namespace == namespace && sec.Name == name {
				return secretValue(sec.Data, sec.StringData, namespace, name, key, decl.Source.String())
			}
		}
		return nil, fmt.Errorf("%w: Secret %s/%s: %s decrypts to no Secret of that name", issuer.ErrPermanent, namespace, name, decl.Source)
	}
	if sec, path, found, err := s.committedSecret(ctx, namespace, name); found {
		if err != nil {
			return nil, fmt.Errorf("Secret %s/%s: %w", namespace, name, err)
		}
		return secretValue(sec.Data, sec.StringData, namespace, name, key, path)
	}
	if s.cluster != nil {
		data, err := s.cluster.SecretData(ctx, namespace, name)
		if err != nil {
			return nil, fmt.Errorf("Secret %s/%s: not in the repository; in the cluster: %w", namespace, name, err)
		}
		return secretValue(data, nil, namespace, name, key, "the cluster")
	}
	return nil, fmt.Errorf("%w: Secret %s/%s is not in the repository: commit it SOPS-encrypted (sops --encrypt --in-place FILE) anywhere outside secrets/ and accounts/, or, for a CA, declare a Certificate with that secretName", issuer.ErrPermanent, namespace, name)
}

// committedSecret reads certsync's own committed TLS Secret
// namespace/name: the copy the planner judges the certificate by (the
// newest sound one), else any other sound copy this agent can decrypt —
// every cluster's copy holds the same certificate. found is false when
// nothing is committed under that name.
func (s *passSecrets) committedSecret(ctx context.Context, namespace, name string) (sec *corev1.Secret, path string, found bool, err error) {
	var paths []string
	for p, rec := range s.p.state.Committed {
		if rec.Namespace == namespace && rec.SecretName == name {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil, "", false, nil
	}
	sort.Strings(paths)
	from := s.p.state.source(paths)
	ordered := append([]string{from}, slices.DeleteFunc(paths, func(p string) bool { return p == from })...)
	for _, p := range ordered {
		rec := s.p.state.Committed[p]
		if s.p.state.Corrupt[p] != nil || exposed(&rec) {
			continue
		}
		secrets, derr := s.decrypt(ctx, p)
		if derr == nil && len(secrets) == 1 {
			return secrets[0], p, true, nil
		}
		if derr == nil {
			derr = fmt.Errorf("%w: %s holds %d Secrets, not one", issuer.ErrPermanent, p, len(secrets))
		}
		if err == nil {
			err = derr
		}
	}
	if err == nil {
		err = fmt.Errorf("%w: every committed copy (%s) failed verification or holds its key in plaintext; it is re-issued first", issuer.ErrPermanent, strings.Join(ordered, ", "))
	}
	return nil, "", true, err
}

func (s *passSecrets) decrypt(ctx context.Context, path string) ([]*corev1.Secret, error) {
	s.mu.Lock()
	f := s.files[path]
	if f == nil {
		f = &decryptedFile{}
		s.files[path] = f
	}
	s.mu.Unlock()
	f.once.Do(func() {
		content, err := s.p.tree.ReadFile(path)
		if err != nil {
			f.err = fmt.Errorf("read %s: %w", path, err)
			return
		}
		plain, err := s.p.enc.Decrypt(ctx, path, content)
		if err != nil {
			f.err = err
			return
		}
		for _, doc := range splitDocuments(plain) {
			sec, err := render.Parse(doc)
			if err != nil {
				f.err = fmt.Errorf("%s: %w", path, err)
				return
			}
			if sec.Namespace == "" {
				sec.Namespace = "default"
			}
			f.secrets = append(f.secrets, sec)
		}
	})
	return f.secrets, f.err
}

func secretValue(data map[string][]byte, stringData map[string]string, namespace, name, key, where string) ([]byte, error) {
	if v, ok := stringData[key]; ok {
		return []byte(v), nil
	}
	if v, ok := data[key]; ok {
		return v, nil
	}
	var have []string
	for k := range data {
		have = append(have, k)
	}
	for k := range stringData {
		have = append(have, k)
	}
	sort.Strings(have)
	return nil, fmt.Errorf("%w: Secret %s/%s (%s) has no key %q (it has: %s)", issuer.ErrPermanent, namespace, name, where, key, strings.Join(have, ", "))
}

// splitDocuments splits a multi-document YAML file at its "---" lines.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}
