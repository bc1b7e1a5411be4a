package reconcile

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
	"github.com/certsync/certsync/render"
)

// DefaultAccountNamespace is where cert-manager keeps the account key of a
// ClusterIssuer (its cluster resource namespace); the committed account
// Secret carries it so it could be applied as cert-manager would.
const DefaultAccountNamespace = "cert-manager"

// outcome is what the order step produced: the file changes to commit and,
// kept in memory for the apply step, the plaintext Secrets just issued.
type outcome struct {
	changes  map[string]FileChange
	secrets  map[string]*corev1.Secret // by path
	issued   map[string]Issued         // by path
	problems []error
	failed   []Action // orders that failed, with the error as Reason
}

func (o *outcome) add(path string, content []byte) {
	o.changes[path] = FileChange{Path: path, Content: content}
}

// order performs the plan's orders, re-encryptions and file prunes. Each
// certificate fails alone: its error is recorded and the others go on.
func (r *Reconciler) order(ctx context.Context, p *pass, plan Plan) *outcome {
	out := &outcome{changes: map[string]FileChange{}, secrets: map[string]*corev1.Secret{}, issued: map[string]Issued{}}
	issuers := newIssuerCache(r, p, out)
	var orders []Action
	for _, a := range plan.Actions {
		switch {
		case a.Kind.Orders():
			orders = append(orders, a)
		case a.Kind == Reencrypt:
			if err := r.reencrypt(ctx, p, a, out); err != nil {
				out.problems = append(out.problems, err)
			}
		case a.Kind == PruneFile:
			out.changes[a.Path] = FileChange{Path: a.Path, Delete: true}
		}
	}
	if len(orders) == 0 {
		return out
	}
	r.log.Info("ordering certificates", "count", len(orders), "concurrency", r.cfg.Concurrency)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		sem  = make(chan struct{}, r.cfg.Concurrency)
		done int
	)
	for _, a := range orders {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			secret, content, iss, err := r.orderOne(ctx, p, issuers, a)
			mu.Lock()
			defer mu.Unlock()
			done++
			key := a.Certificate.Key()
			if err != nil {
				r.recordFailure(key, r.cfg.Clock(), err)
				failed := a
				failed.Reason = err.Error()
				out.failed = append(out.failed, failed)
				r.log.Error("order failed", "certificate", key, "source", a.Certificate.Source.String(), "progress", fmt.Sprintf("%d/%d", done, len(orders)), "error", err)
				out.problems = append(out.problems, fmt.Errorf("%s: %s: %w", a.Certificate.Source, key, err))
				return
			}
			r.clearFailure(key)
			r.log.Info("issued", "certificate", key, "serial", iss.Serial, "notAfter", iss.NotAfter, "progress", fmt.Sprintf("%d/%d", done, len(orders)))
			out.add(a.Path, content)
			out.secrets[a.Path], out.issued[a.Path] = secret, iss
			if req, ok := p.requests[key]; ok {
				out.changes[req.Path] = FileChange{Path: req.Path, Delete: true}
			}
		}()
	}
	wg.Wait()
	for path, content := range issuers.staged() {
		out.add(path, content)
	}
	return out
}

// orderOne issues one certificate and returns its Secret, encrypted file
// content and summary.
func (r *Reconciler) orderOne(ctx context.Context, p *pass, issuers *issuerCache, a Action) (*corev1.Secret, []byte, Issued, error) {
	c := a.Certificate
	decl := p.set.IssuerFor(c)
	if decl == nil {
		return nil, nil, Issued{}, fmt.Errorf("issuer %s/%s: %w", c.IssuerRef.Kind, c.IssuerRef.Name, declared.ErrUnknownIssuer)
	}
	iss, err := issuers.get(ctx, decl)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	key, err := r.privateKey(ctx, p, a)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	csr, err := pki.CSR(c, key)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	cert, err := iss.Issue(ctx, issuer.Request{Name: c.Key(), CSR: csr, DNSNames: c.DNSNames, Labels: c.Labels, Duration: c.Duration})
	if err != nil {
		return nil, nil, Issued{}, fmt.Errorf("issue: %w", err)
	}
	if !pki.KeyMatches(cert.Leaf, key) {
		return nil, nil, Issued{}, fmt.Errorf("issue: %w: the CA returned a certificate for another key", issuer.ErrPermanent)
	}
	var window *issuer.RenewalWindow
	if adv, ok := iss.(issuer.RenewalAdvisor); ok {
		w, ok, err := adv.RenewalWindow(ctx, cert.Leaf)
		if err != nil {
			r.log.Warn("no renewal window from the CA; using the computed renewal time", "certificate", c.Key(), "error", err)
		} else if ok {
			window = &w
		}
	}
	keyPEM, err := pki.MarshalKey(key, c.PrivateKey.Encoding)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	now := r.cfg.Clock()
	secret := render.TLSSecret(render.TLS{Certificate: c, Issued: cert, KeyPEM: keyPEM, IssuedAt: now, Reason: a.Reason, Window: window})
	content, err := r.encryptSecret(ctx, p, a.Path, secret)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	return secret, content, Issued{Kind: a.Kind, Certificate: c.Key(), Path: a.Path, Serial: pki.Serial(cert.Leaf), NotAfter: cert.Leaf.NotAfter, Reason: a.Reason}, nil
}

// privateKey generates a key, or with rotationPolicy Never reuses the
// committed one when it still matches the spec.
func (r *Reconciler) privateKey(ctx context.Context, p *pass, a Action) (crypto.Signer, error) {
	c := a.Certificate
	if c.PrivateKey.RotationPolicy == declared.RotateNever && a.Committed != nil {
		s, err := r.decryptSecret(ctx, p, a.Path)
		if err != nil {
			return nil, fmt.Errorf("reuse private key (rotationPolicy Never): %w", err)
		}
		key, err := pki.ParseKey(s.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			return nil, fmt.Errorf("reuse private key (rotationPolicy Never): %s: %w", a.Path, err)
		}
		if pki.KeySpecOf(key.Public()) == c.PrivateKey.String() {
			return key, nil
		}
		r.log.Info("committed key does not match the spec; generating a new one despite rotationPolicy Never", "certificate", c.Key())
	}
	key, err := pki.GenerateKey(c.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", c.PrivateKey, err)
	}
	return key, nil
}

func (r *Reconciler) reencrypt(ctx context.Context, p *pass, a Action, out *outcome) error {
	s, err := r.decryptSecret(ctx, p, a.Path)
	if err != nil {
		return fmt.Errorf("re-encrypt: %w", err)
	}
	content, err := r.encryptSecret(ctx, p, a.Path, s)
	if err != nil {
		return fmt.Errorf("re-encrypt: %w", err)
	}
	out.add(a.Path, content)
	return nil
}

func (r *Reconciler) encryptSecret(ctx context.Context, p *pass, path string, s *corev1.Secret) ([]byte, error) {
	plain, err := render.Marshal(s)
	if err != nil {
		return nil, err
	}
	content, err := p.enc.Encrypt(ctx, path, plain)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", path, err)
	}
	return content, nil
}

// decryptSecret reads and decrypts a committed Secret of the pass's tree.
func (r *Reconciler) decryptSecret(ctx context.Context, p *pass, path string) (*corev1.Secret, error) {
	content, err := p.tree.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	plain, err := p.enc.Decrypt(ctx, path, content)
	if err != nil {
		return nil, err
	}
	s, err := render.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// issuerCache builds each issuer once per pass, loading its ACME account
// key from the repository or generating one to be committed with the
// certificates it issues.
type issuerCache struct {
	r   *Reconciler
	p   *pass
	out *outcome

	mu      sync.Mutex
	entries map[string]*issuerEntry
	newKeys map[string][]byte // account files to commit
}

type issuerEntry struct {
	once sync.Once
	iss  issuer.Issuer
	err  error
}

func newIssuerCache(r *Reconciler, p *pass, out *outcome) *issuerCache {
	return &issuerCache{r: r, p: p, out: out, entries: map[string]*issuerEntry{}, newKeys: map[string][]byte{}}
}

func (c *issuerCache) get(ctx context.Context, decl *declared.Issuer) (issuer.Issuer, error) {
	c.mu.Lock()
	e := c.entries[decl.Key()]
	if e == nil {
		e = &issuerEntry{}
		c.entries[decl.Key()] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		key, err := c.accountKey(ctx, decl)
		if err != nil {
			e.err = fmt.Errorf("%s (%s): %w", decl.Key(), decl.Source, err)
			return
		}
		e.iss, e.err = c.r.cfg.Issuers(ctx, decl, key)
		if e.err != nil {
			e.err = fmt.Errorf("%s (%s): %w", decl.Key(), decl.Source, e.err)
		}
	})
	return e.iss, e.err
}

func (c *issuerCache) accountKey(ctx context.Context, decl *declared.Issuer) (crypto.Signer, error) {
	if decl.ACME == nil {
		return nil, nil
	}
	path := committed.AccountPath(decl.Namespace, decl.ACME.PrivateKeySecretRef)
	content, err := c.p.tree.ReadFile(path)
	switch {
	case err == nil:
		plain, err := c.p.enc.Decrypt(ctx, path, content)
		if err != nil {
			return nil, fmt.Errorf("ACME account key: %w", err)
		}
		s, err := render.Parse(plain)
		if err != nil {
			return nil, fmt.Errorf("ACME account key %s: %w", path, err)
		}
		key, err := pki.ParseKey(s.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			return nil, fmt.Errorf("ACME account key %s: %w", path, err)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", path, err)
	case decl.ACME.DisableAccountKeyGeneration:
		return nil, fmt.Errorf("%w: no account key at %s and disableAccountKeyGeneration is set: commit the existing key there", issuer.ErrPermanent, path)
	}
	key, err := pki.GenerateKey(declared.KeySpec{Algorithm: declared.RSA, Size: declared.DefaultRSASize})
	if err != nil {
		return nil, fmt.Errorf("generate ACME account key: %w", err)
	}
	keyPEM, err := pki.MarshalKey(key, "PKCS1")
	if err != nil {
		return nil, err
	}
	ns := decl.Namespace
	if ns == "" {
		ns = DefaultAccountNamespace
	}
	enc, err := c.r.encryptSecret(ctx, c.p, path, render.AccountSecret(ns, decl.ACME.PrivateKeySecretRef, decl.Key(), keyPEM))
	if err != nil {
		return nil, fmt.Errorf("ACME account key: %w", err)
	}
	c.r.log.Info("generated ACME account key", "issuer", decl.Key(), "path", path)
	c.mu.Lock()
	c.newKeys[path] = enc
	c.mu.Unlock()
	return key, nil
}

func (c *issuerCache) staged() map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.newKeys
}
