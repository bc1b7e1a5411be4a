package reconcile

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// outcome is one batch of results: the file changes to commit and, kept in
// memory for the apply step, the plaintext Secrets just issued.
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

// errNotOrdered marks an error that stopped an order before anything
// reached the CA (the account key could not be committed): the
// certificate is not backed off, the next pass orders it.
var errNotOrdered = errors.New("not ordered")

// orderResults is what the order step did besides what it wrote.
type orderResults struct {
	problems    []error
	failed      []Action
	interrupted int // orders not started or abandoned because the pass was stopped
	reused      int // certificates taken from set-aside local commits
}

// order performs the plan's re-encryptions, re-renders, copies, file
// prunes and orders, handing each result to the writer as soon as it
// exists. Each certificate fails alone: its error is recorded and the
// others go on. When drain is done no new order starts; orders in flight
// finish (or end with ctx), and neither counts as a failure.
func (r *Reconciler) order(ctx context.Context, drain <-chan struct{}, p *pass, plan Plan, w *writer) orderResults {
	var res orderResults
	var first []FileChange
	var secrets *passSecrets // for re-rendered keystores; made on first use
	for _, a := range plan.Actions {
		switch {
		case a.Kind == Rerender:
			if secrets == nil {
				secrets = r.passSecrets(p)
			}
			secret, changes, err := r.rerender(ctx, p, secrets, a)
			if err != nil {
				res.problems = append(res.problems, err)
				continue
			}
			// This cluster's copy (a.Path when it receives one) is
			// applied once the commit is pushed.
			if !r.ownPath(a.Path) {
				secret = nil
			}
			if err := w.add(ctx, changes, a.Path, secret, nil, false); err != nil {
				res.problems = append(res.problems, err)
			}
		case a.Kind == Reencrypt:
			content, err := r.reencrypt(ctx, p, a)
			if err != nil {
				res.problems = append(res.problems, err)
				continue
			}
			first = append(first, FileChange{Path: a.Path, Content: content})
		case a.Kind == PruneFile:
			first = append(first, FileChange{Path: a.Path, Delete: true})
		case a.Kind == Copy:
			secret, content, err := r.copySecret(ctx, p, a)
			if err != nil {
				res.problems = append(res.problems, err)
				continue
			}
			if !r.ownPath(a.Path) {
				first = append(first, FileChange{Path: a.Path, Content: content})
				continue
			}
			// This cluster's copy: applied once the commit is pushed.
			if err := w.add(ctx, []FileChange{{Path: a.Path, Content: content}}, a.Path, secret, nil, false); err != nil {
				res.problems = append(res.problems, err)
			}
		}
	}
	// ACME account keys an unpushed commit held: keep them, or the next
	// order would register a second account.
	for _, ch := range r.carriedAccounts() {
		if _, err := p.tree.ReadFile(ch.Path); errors.Is(err, fs.ErrNotExist) {
			first = append(first, ch)
		}
	}
	if len(first) > 0 {
		if err := w.add(ctx, first, "", nil, nil, false); err != nil {
			res.problems = append(res.problems, err)
		}
	}
	var orders []Action
	for _, a := range plan.Actions {
		if a.Kind.Orders() {
			orders = append(orders, a)
		}
	}
	if len(orders) == 0 {
		return res
	}
	orders = r.encryptable(ctx, p, orders, &res)
	if len(orders) == 0 {
		return res
	}
	issuers := newIssuerCache(r, p, w)
	r.log.Info("ordering certificates", "count", len(orders), "concurrency", r.cfg.Concurrency)
	run := &orderRun{r: r, ctx: ctx, drain: drain, p: p, issuers: issuers, w: w,
		sem: make(chan struct{}, r.cfg.Concurrency), prog: &progress{total: len(orders)}, res: &res}
	// Orders go in chunks of one batch: each chunk is claimed in Git
	// first, so no other agent orders the same certificates. The next
	// chunk is claimed as soon as the current one's orders have all
	// started, so the CA is kept busy across chunks.
	stopRenewing := w.keepClaim(ctx)
	defer stopRenewing()
	var previous *chunk
	for start := 0; start < len(orders); start += w.cfg.Size {
		rest := len(orders) - start
		if stopped(ctx, drain) {
			run.interrupted(rest)
			break
		}
		part := orders[start:min(start+w.cfg.Size, len(orders))]
		paths := make([]string, len(part))
		for i, a := range part {
			paths[i] = a.Path
		}
		held, err := w.claim(ctx, paths)
		if err != nil {
			run.mu.Lock()
			res.interrupted += rest
			res.problems = append(res.problems, fmt.Errorf("not ordering %d certificates: %w", rest, err))
			run.mu.Unlock()
			r.log.Error("not ordering: the order claim could not be pushed, and ordering without one could order twice; the next pass tries again", "certificates", rest, "error", err)
			break
		}
		if skipped := len(part) - len(held); skipped > 0 {
			run.prog.add(skipped)
			r.log.Info("not ordering certificates another agent claimed or committed first", "count", skipped)
		}
		current := run.start(part, held)
		if previous != nil {
			run.finish(previous)
		}
		previous = current
		if current.notStarted > 0 {
			run.interrupted(current.notStarted + rest - len(part))
			break
		}
	}
	if previous != nil {
		run.finish(previous)
	}
	return res
}

// orderRun is the ordering step of one pass: the semaphore that bounds
// orders in flight and the results they add to, shared by its chunks.
type orderRun struct {
	r       *Reconciler
	ctx     context.Context
	drain   <-chan struct{}
	p       *pass
	issuers *issuerCache
	w       *writer
	sem     chan struct{}
	prog    *progress

	mu  sync.Mutex // guards res
	res *orderResults
}

// chunk is one claimed part of the orders, in flight.
type chunk struct {
	held       []string
	wg         sync.WaitGroup
	notStarted int // held but not started because the pass was stopped
}

func (o *orderRun) interrupted(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.res.interrupted += n
	o.r.log.Info("stopping: no new orders; waiting for those in flight", "not started", n)
}

// finish waits for a chunk's orders and releases its claim. When every
// order of the chunk failed at the CA, the claim is left to lapse: other
// agents wait out the failure too, and no commit says nothing.
func (o *orderRun) finish(c *chunk) {
	c.wg.Wait()
	o.mu.Lock()
	held := map[string]bool{}
	for _, path := range c.held {
		held[path] = true
	}
	failed := 0
	for _, a := range o.res.failed {
		if held[a.Path] {
			failed++
		}
	}
	o.mu.Unlock()
	allFailed := len(c.held) > 0 && c.notStarted == 0 && failed == len(c.held)
	if err := o.w.releaseClaim(o.ctx, c.held, !allFailed); err != nil {
		o.mu.Lock()
		o.res.problems = append(o.res.problems, err)
		o.mu.Unlock()
	}
}

// encryptable keeps the orders whose Secret (and, for a new ACME account,
// whose account key) the repository's .sops.yaml lets the agent encrypt:
// a certificate that could not be committed must not be ordered. The
// others are reported for this pass only; no backoff, since fixing
// .sops.yaml changes no declaration.
func (r *Reconciler) encryptable(ctx context.Context, p *pass, orders []Action, res *orderResults) []Action {
	probe := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: "certsync-probe"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSPrivateKeyKey: []byte("probe")}}
	checked := map[string]error{}
	rules, _ := p.enc.(RuleIndexer)
	passedRules := map[int]bool{}
	check := func(path string) error {
		rule, ruleErr := 0, errors.New("no rule index")
		if rules != nil {
			rule, ruleErr = rules.RuleIndex(path)
		}
		if ruleErr == nil && passedRules[rule] {
			return nil
		}
		err, done := checked[path]
		if !done {
			_, err = r.encryptSecret(ctx, p, path, probe)
			checked[path] = err
		}
		// A failure is checked, and reported, path by path: its message
		// names the path.
		if err == nil && ruleErr == nil {
			passedRules[rule] = true
		}
		return err
	}
	var ok []Action
	for _, a := range orders {
		err := check(a.Path)
		for _, path := range a.Copies {
			if err == nil {
				err = check(path)
			}
		}
		if decl := p.set.IssuerFor(a.Certificate); err == nil && decl != nil && decl.ACME != nil {
			if account := committed.AccountPath(decl.Namespace, decl.ACME.PrivateKeySecretRef); !p.has(account) {
				err = check(account)
			}
		}
		if err != nil {
			failed := a
			failed.Reason = "not ordered: " + err.Error()
			res.failed = append(res.failed, failed)
			res.problems = append(res.problems, fmt.Errorf("%s: %s: not ordered, the result could not be committed: %w", a.Certificate.Source, a.Certificate.Key(), err))
			continue
		}
		ok = append(ok, a)
	}
	return ok
}

// progress counts finished orders across chunks for the log.
type progress struct {
	mu          sync.Mutex
	done, total int
}

func (p *progress) add(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	return fmt.Sprintf("%d/%d", p.done, p.total)
}

// start starts the orders of the held paths of part, Concurrency at a
// time across chunks, and returns once all have started (or the pass was
// stopped: chunk.notStarted).
func (o *orderRun) start(part []Action, heldPaths []string) *chunk {
	c := &chunk{held: heldPaths}
	held := map[string]bool{}
	for _, path := range heldPaths {
		held[path] = true
	}
	for i, a := range part {
		if !held[a.Path] {
			continue
		}
		select {
		case o.sem <- struct{}{}:
		case <-o.drain:
		case <-o.ctx.Done():
		}
		if stopped(o.ctx, o.drain) {
			for _, b := range part[i:] {
				if held[b.Path] {
					c.notStarted++
				}
			}
			return c
		}
		if !o.w.stillDue(a.Path) {
			<-o.sem
			o.prog.add(1)
			o.r.log.Info("not ordering: another writer committed it meanwhile", "certificate", a.Certificate.Key())
			continue
		}
		c.wg.Add(1)
		go func() {
			defer func() { <-o.sem; c.wg.Done() }()
			is, reused, err := o.orderAndCommit(a)
			o.record(a, is, reused, err)
		}()
	}
	return c
}

// orderAndCommit orders one certificate (or reuses one an earlier pass
// ordered but could not push) and hands it to the writer.
func (o *orderRun) orderAndCommit(a Action) (Issued, bool, error) {
	secret, content, is, reused := o.r.reuseCarried(o.ctx, o.p, a)
	if !reused {
		var err error
		if secret, content, is, err = o.r.orderOne(o.ctx, o.p, o.issuers, a); err != nil {
			return is, false, err
		}
	}
	changes := []FileChange{{Path: a.Path, Content: content}}
	for _, path := range a.Copies {
		copied, ok := o.r.carriedFile(path)
		if !reused || !ok {
			var err error
			// Paid for: encrypted even if the pass is being stopped.
			if copied, err = o.r.encryptSecret(context.WithoutCancel(o.ctx), o.p, path, secret); err != nil {
				return is, reused, fmt.Errorf("issued serial %s but could not encrypt the copy for %s: %w", is.Serial, path, err)
			}
		}
		changes = append(changes, FileChange{Path: path, Content: copied})
	}
	if req, ok := o.p.requests[a.Certificate.Key()]; ok {
		changes = append(changes, FileChange{Path: req.Path, Delete: true})
	}
	is.Copies = a.Copies
	if err := o.w.add(o.ctx, changes, a.Path, secret, &is, false); err != nil {
		return is, reused, fmt.Errorf("issued serial %s but could not commit it: %w", is.Serial, err)
	}
	return is, reused, nil
}

// record files one order's outcome: a failure is backed off by its cause;
// a shutdown, or trouble before anything reached the CA, is not.
func (o *orderRun) record(a Action, is Issued, reused bool, err error) {
	r, key := o.r, a.Certificate.Key()
	progress := o.prog.add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil && reused:
		o.res.reused++
		r.log.Info("reused a certificate an earlier pass ordered but could not push", "certificate", key, "serial", is.Serial, "progress", progress)
	case err == nil:
		r.clearFailure(key)
		r.log.Info("issued", "certificate", key, "serial", is.Serial, "notAfter", is.NotAfter, "progress", progress)
	case o.ctx.Err() != nil:
		o.res.interrupted++
		r.log.Warn("order interrupted by shutdown; it is ordered again next pass", "certificate", key, "progress", progress)
	case errors.Is(err, errNotOrdered):
		o.res.interrupted++
		o.res.problems = append(o.res.problems, fmt.Errorf("%s: %s: %w", a.Certificate.Source, key, err))
		r.log.Warn("not ordered; it is ordered next pass", "certificate", key, "progress", progress, "error", err)
	default:
		r.recordFailure(key, o.p.state.Fingerprints[key], r.cfg.Clock(), err)
		failed := a
		failed.Reason = err.Error()
		o.res.failed = append(o.res.failed, failed)
		r.log.Error("order failed", "certificate", key, "source", a.Certificate.Source.String(), "progress", progress, "error", err)
		o.res.problems = append(o.res.problems, fmt.Errorf("%s: %s: %w", a.Certificate.Source, key, err))
	}
}

// stopped reports whether the pass must start no new order.
func stopped(ctx context.Context, drain <-chan struct{}) bool {
	if ctx.Err() != nil {
		return true
	}
	select {
	case <-drain:
		return true
	default:
		return false
	}
}

// copySecret decrypts the committed certificate a Copy copies and
// encrypts it for the copy's path (and so for that cluster's recipients).
func (r *Reconciler) copySecret(ctx context.Context, p *pass, a Action) (*corev1.Secret, []byte, error) {
	s, err := r.decryptSecret(ctx, p, a.From)
	if errors.Is(err, ErrNoKey) {
		return nil, nil, fmt.Errorf("copy %s to %s: %w; give this agent an age identity that can open %s (add its recipient to the .sops.yaml rule of that path), or run `certsync renew %s` to order one certificate for every cluster that receives it",
			a.From, a.Path, err, a.From, a.Certificate.Key())
	}
	if err != nil {
		return nil, nil, fmt.Errorf("copy %s to %s: %w", a.From, a.Path, err)
	}
	content, err := r.encryptSecret(ctx, p, a.Path, s)
	if err != nil {
		return nil, nil, fmt.Errorf("copy %s to %s: %w", a.From, a.Path, err)
	}
	return s, content, nil
}

// ownPath reports whether path is a Secret of the agent's own cluster.
func (r *Reconciler) ownPath(path string) bool {
	cluster, _, _, _, ok := r.layout.ParseSecretPath(path)
	return ok && cluster == r.cfg.ClusterName
}

// reuseCarried takes the certificate for a from a local commit that
// could not be pushed (see pushPending) when it still fits the declaration,
// is not due, and verifies: an order already paid for is never repeated.
func (r *Reconciler) reuseCarried(ctx context.Context, p *pass, a Action) (*corev1.Secret, []byte, Issued, bool) {
	content, ok := r.carriedFile(a.Path)
	if !ok {
		return nil, nil, Issued{}, false
	}
	c := a.Certificate
	rec, err := p.state.Layout.Read(a.Path, content)
	if err != nil || exposed(&rec) {
		return nil, nil, Issued{}, false
	}
	if kind, _ := reissueReason(c, &rec); kind != "" || !p.state.Now.Before(RenewalTime(c, &rec, p.state.Policy)) {
		return nil, nil, Issued{}, false
	}
	s, err := openSecret(ctx, p.enc, a.Path, content)
	if err != nil || render.Verify(s, rec) != nil {
		return nil, nil, Issued{}, false
	}
	return s, content, Issued{Kind: a.Kind, Certificate: c.Key(), Path: a.Path, Serial: rec.Serial, NotAfter: rec.NotAfter,
		Reason: a.Reason + " (certificate ordered by an earlier pass whose commit was not pushed)"}, true
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
	// Before the order: a keystore password that cannot be read must not
	// cost a certificate, nor back it off (committing the Secret fixes it).
	passwords, err := keystorePasswords(ctx, issuers.secrets, c)
	if err != nil {
		return nil, nil, Issued{}, fmt.Errorf("%w: keystores: %w", errNotOrdered, err)
	}
	key, err := r.privateKey(ctx, p, a)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	csr, err := pki.CSR(c, key)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	req := issuer.Request{Name: c.Key(), CSR: csr, DNSNames: c.DNSNames, Labels: c.Labels, Duration: c.Duration, IsCA: c.IsCA,
		Signer: key} // only a selfSigned issuer uses it
	req.IPAddresses = c.IPAddresses
	if req.KeyUsage, req.ExtKeyUsage, err = pki.KeyUsages(c); err != nil {
		return nil, nil, Issued{}, fmt.Errorf("%w: %w", issuer.ErrPermanent, err)
	}
	req.Replaces = r.replaces(ctx, p, a)
	cert, err := iss.Issue(ctx, req)
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
			next := w.RetryAfter
			if next.IsZero() {
				next = r.cfg.Clock().Add(defaultPollInterval)
			}
			r.setWindow(a.Path, Window{Serial: pki.Serial(cert.Leaf), Start: w.Start, End: w.End, NextPoll: next})
		}
	}
	keyPEM, err := pki.MarshalKey(key, c.PrivateKey.Encoding)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	now := r.cfg.Clock()
	secret, err := render.TLSSecret(render.TLS{Certificate: c, Issued: cert, KeyPEM: keyPEM, IssuedAt: now, Reason: a.Reason, Window: window,
		Passwords: passwords, KeystorePasswordsHash: p.state.KeystorePasswords[c.Key()]})
	if err != nil {
		return nil, nil, Issued{}, fmt.Errorf("issued serial %s but could not render its Secret: %w", pki.Serial(cert.Leaf), err)
	}
	// Issued and paid for: encrypt it even if the pass is being stopped.
	content, err := r.encryptSecret(context.WithoutCancel(ctx), p, a.Path, secret)
	if err != nil {
		return nil, nil, Issued{}, err
	}
	return secret, content, Issued{Kind: a.Kind, Certificate: c.Key(), Path: a.Path, Serial: pki.Serial(cert.Leaf), NotAfter: cert.Leaf.NotAfter, Reason: a.Reason}, nil
}

// replaces is the committed certificate a renewal replaces (ACME ARI):
// an order that names it is exempt from the CA's rate limits. Only a
// verified, same-issuer renewal names it; anything else orders plainly.
func (r *Reconciler) replaces(ctx context.Context, p *pass, a Action) *x509.Certificate {
	if a.Kind != Renew || a.Committed == nil || a.FreshKey || !p.verified[a.source()] {
		return nil
	}
	s, err := r.decryptSecret(ctx, p, a.source())
	if err != nil {
		return nil
	}
	chain, err := pki.ParseChain(s.Data[corev1.TLSCertKey])
	if err != nil || len(chain) == 0 {
		return nil
	}
	return chain[0]
}

// privateKey generates a key, or with rotationPolicy Never reuses the
// committed one when it still matches the spec.
func (r *Reconciler) privateKey(ctx context.Context, p *pass, a Action) (crypto.Signer, error) {
	c := a.Certificate
	if c.PrivateKey.RotationPolicy == declared.RotateNever && a.Committed != nil && !a.FreshKey {
		s, err := r.decryptSecret(ctx, p, a.source())
		if err != nil {
			return nil, fmt.Errorf("reuse private key (rotationPolicy Never): %w", err)
		}
		key, err := pki.ParseKey(s.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			return nil, fmt.Errorf("reuse private key (rotationPolicy Never): %s: %w", a.source(), err)
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

func (r *Reconciler) reencrypt(ctx context.Context, p *pass, a Action) ([]byte, error) {
	var s *corev1.Secret
	var err error
	if !r.committedEncrypted(p, a) {
		s, err = r.plaintextSecret(p, a.Path) // committed without SOPS: nothing to decrypt
	} else {
		s, err = r.decryptSecret(ctx, p, a.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("re-encrypt: %w", err)
	}
	content, err := r.encryptSecret(ctx, p, a.Path, s)
	if err != nil {
		return nil, fmt.Errorf("re-encrypt: %w", err)
	}
	return content, nil
}

func (r *Reconciler) encryptSecret(ctx context.Context, p *pass, path string, s *corev1.Secret) ([]byte, error) {
	plain, err := render.Marshal(s)
	if err != nil {
		return nil, err
	}
	// The plaintext holds the private key: gone once it is encrypted.
	defer clear(plain)
	content, err := p.enc.Encrypt(ctx, path, plain)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", path, err)
	}
	return content, nil
}

// committedEncrypted reports whether the file a acts on was committed
// with SOPS; certificates carry it in their record, account keys are read.
func (r *Reconciler) committedEncrypted(p *pass, a Action) bool {
	if a.Committed != nil {
		return a.Committed.Encrypted
	}
	content, err := p.tree.ReadFile(a.Path)
	if err != nil {
		return true // let decryption report it
	}
	enc, err := committed.Encrypted(a.Path, content)
	return err != nil || enc
}

// plaintextSecret reads a committed Secret that was written without SOPS.
func (r *Reconciler) plaintextSecret(p *pass, path string) (*corev1.Secret, error) {
	content, err := p.tree.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s, err := render.Parse(content)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// decryptSecret reads and decrypts a committed Secret of the pass's tree.
func (r *Reconciler) decryptSecret(ctx context.Context, p *pass, path string) (*corev1.Secret, error) {
	content, err := p.tree.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return openSecret(ctx, p.enc, path, content)
}

// issuerCache builds each issuer once per pass, loading its ACME account
// key from the repository or generating one. A new account key is
// committed and pushed before the account is registered, so a crash never
// registers a second account, and of several agents racing to create it,
// all end up using the one that reached the remote first.
type issuerCache struct {
	r *Reconciler
	p *pass
	w *writer
	// secrets resolves the issuers' *SecretRef fields for this pass.
	secrets issuer.SecretGetter

	mu      sync.Mutex
	entries map[string]*issuerEntry
}

type issuerEntry struct {
	once sync.Once
	iss  issuer.Issuer
	err  error
}

func newIssuerCache(r *Reconciler, p *pass, w *writer) *issuerCache {
	return &issuerCache{r: r, p: p, w: w, secrets: r.passSecrets(p), entries: map[string]*issuerEntry{}}
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
		e.iss, e.err = c.r.cfg.Issuers(ctx, decl, key, c.secrets)
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
	// The remote head as this pass last saw it, not the tree it planned
	// on: another agent may have created the account since.
	var content []byte
	var err error
	if c.w == nil {
		// Read-only use (polling renewal windows): never create an account.
		if content, err = c.p.tree.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read the ACME account key %s: %w", path, err)
		}
	} else {
		content, err = c.w.remoteFile(path)
	}
	switch {
	case err == nil:
		return c.readAccountKey(ctx, path, content)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", path, err)
	case decl.ACME.DisableAccountKeyGeneration:
		return nil, fmt.Errorf("%w: no account key at %s and disableAccountKeyGeneration is set: commit the existing key there", issuer.ErrPermanent, path)
	}
	if carried, ok := c.r.carriedFile(path); ok {
		// An earlier pass created this account but never pushed its key:
		// keep using that account rather than registering another.
		key, err := c.readAccountKey(ctx, path, carried)
		if err == nil {
			if err := c.w.add(ctx, []FileChange{{Path: path, Content: carried}}, "", nil, nil, true); err != nil && !c.w.localOnly(err) {
				return nil, fmt.Errorf("%w: commit the ACME account key: %w", errNotOrdered, err)
			}
			return key, nil
		}
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
	c.r.log.Info("generated ACME account key; committing it before registering", "issuer", decl.Key(), "path", path)
	if err := c.w.add(ctx, []FileChange{{Path: path, Content: enc}}, "", nil, nil, true); err != nil && !c.w.localOnly(err) {
		return nil, fmt.Errorf("%w: commit the new ACME account key: %w", errNotOrdered, err)
	}
	// Another agent may have pushed its own key first: use that one.
	if theirs, err := c.w.remoteFile(path); err == nil && !bytes.Equal(theirs, enc) {
		c.r.log.Info("another agent created the ACME account key first; using it", "issuer", decl.Key(), "path", path)
		return c.readAccountKey(ctx, path, theirs)
	}
	return key, nil
}

func (c *issuerCache) readAccountKey(ctx context.Context, path string, content []byte) (crypto.Signer, error) {
	s, err := openSecret(ctx, c.p.enc, path, content)
	if err != nil {
		return nil, fmt.Errorf("ACME account key: %w", err)
	}
	key, err := pki.ParseKey(s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("ACME account key %s: %w", path, err)
	}
	return key, nil
}
