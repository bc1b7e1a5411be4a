package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/render"
)

// Batching shapes how a pass writes while it orders. Zero values are the
// defaults.
type Batching struct {
	// Size is how many issued certificates are pushed together. Default: 50.
	Size int
	// Interval is the longest a finished certificate waits to be pushed.
	// Default: 30 seconds.
	Interval time.Duration
}

func (b Batching) withDefaults() Batching {
	if b.Size <= 0 {
		b.Size = 50
	}
	if b.Interval <= 0 {
		b.Interval = 30 * time.Second
	}
	return b
}

// writer commits a pass's results as they arrive. Every finished
// certificate is committed locally at once (the local clone survives a
// crash, and the next pass pushes what it holds), and pushed in batches:
// the commits of a batch are squashed into one on top of the remote head,
// so history gets one commit per push, not one per certificate. After
// each push the batch's Secrets are applied and dropped, so a pass's
// memory does not grow with the number of certificates it orders.
type writer struct {
	r   *Reconciler
	res *Result
	cfg Batching

	mu sync.Mutex
	// p is the pass the current batch is planned on; head is the remote
	// head the batch will be pushed onto; local is the local branch head.
	p           *pass
	head, local Tree
	batch       *outcome
	started     time.Time       // when the oldest unpushed result arrived
	pushErr     error           // the last push failure, kept until a push works
	due         map[string]bool // paths p's plan orders; built on first use
	// claiming are the certificate paths this agent's claim names, until
	// claimUntil; see claim.
	claiming   map[string]bool
	claimUntil time.Time
	// ownRecords is set once res.Records is the writer's own copy, which
	// later pushes update in place (see noteCommitted).
	ownRecords bool
}

func newOutcome() *outcome {
	return &outcome{changes: map[string]FileChange{}, secrets: map[string]*corev1.Secret{}, issued: map[string]Issued{}}
}

func (r *Reconciler) newWriter(p *pass, res *Result) *writer {
	return &writer{r: r, res: res, cfg: r.cfg.Batching.withDefaults(), p: p, head: p.tree, local: p.tree, batch: newOutcome()}
}

// add records one result (an issued certificate, a re-encrypted or pruned
// file, an account key): it is committed locally at once and pushed when
// the batch is full or old enough. now forces a push (account keys must be
// in the remote before the account is used).
func (w *writer) add(ctx context.Context, changes []FileChange, path string, secret *corev1.Secret, is *Issued, now bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if is != nil && !w.stillDueLocked(path) {
		w.r.log.Warn("another writer committed this certificate while it was being ordered; keeping theirs", "certificate", is.Certificate, "serial", is.Serial)
		return nil
	}
	if len(changes) > 0 {
		// A certificate the CA already issued is committed even when the
		// pass is being stopped: it is paid for, and the next pass pushes
		// it. The local commit takes milliseconds.
		local, err := w.r.cfg.Repo.Commit(context.WithoutCancel(ctx), w.local, changes, localMessage(changes, is))
		if err != nil {
			return fmt.Errorf("commit %s locally: %w", changes[0].Path, err)
		}
		w.local = local
	}
	for _, ch := range changes {
		w.batch.changes[ch.Path] = ch
	}
	if secret != nil {
		w.batch.secrets[path] = secret
	}
	if is != nil {
		w.batch.issued[path] = *is
	}
	if w.started.IsZero() {
		w.started = w.r.cfg.Clock()
	}
	if now || len(w.batch.issued) >= w.cfg.Size || w.r.cfg.Clock().Sub(w.started) >= w.cfg.Interval {
		return w.flushLocked(ctx)
	}
	return nil
}

// stillDue reports whether the pass, as last re-planned after a lost push
// race, still wants path ordered: another agent may have committed it.
func (w *writer) stillDue(path string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stillDueLocked(path)
}

func (w *writer) stillDueLocked(path string) bool {
	if w.due == nil {
		w.due = map[string]bool{}
		for _, a := range w.p.plan().Actions {
			if a.Kind.Orders() {
				w.due[a.Path] = true
			}
		}
	}
	return w.due[path]
}

// flush pushes what is not pushed yet.
func (w *writer) flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked(ctx)
}

// flushLocked squashes the batch onto the remote head and pushes it. A lost
// race re-plans on the new head and keeps what is still wanted; another
// failure keeps everything local for the next flush or the next pass.
func (w *writer) flushLocked(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		changes := sortedChanges(w.batch.changes)
		if len(changes) == 0 {
			w.started = time.Time{}
			return nil
		}
		tree, err := w.r.cfg.Repo.Commit(ctx, w.head, changes, commitMessage(w.p.plan(), w.batch))
		if err != nil {
			return fmt.Errorf("commit %d files: %w", len(changes), err)
		}
		w.local = tree
		err = w.r.cfg.Repo.Push(ctx)
		w.res.Git.note(ctx, err)
		if err == nil {
			w.pushed(ctx, tree, changes, attempt)
			return nil
		}
		if !errors.Is(err, ErrPushRace) {
			w.pushErr = err
			return fmt.Errorf("push: %w (the commit is kept locally and pushed by the next pass)", err)
		}
		w.res.PushRaces++
		if attempt >= w.r.cfg.PushAttempts {
			return fmt.Errorf("push: lost the race %d times; the certificates stay committed locally and are re-planned next pass: %w", attempt, err)
		}
		w.r.log.Info("push lost a race; planning again on the new head", "attempt", attempt)
		if err := pause(ctx, attempt); err != nil {
			return fmt.Errorf("push: lost a race and stopped before trying again: %w", err)
		}
		p, out, err := w.r.replan(ctx, w.batch)
		if err != nil {
			return err
		}
		w.p, w.head, w.local, w.batch, w.due = p, p.tree, p.tree, out, nil
		w.res.Head, w.res.Plan = p.tree.Commit(), p.plan()
		// The claim is made again on the new head, for what is still due
		// and not claimed by whoever pushed first.
		for path := range w.claiming {
			if !w.stillDueLocked(path) {
				delete(w.claiming, path)
			}
		}
		claimChanges, err := w.claimChangesLocked()
		if err != nil {
			return err
		}
		for _, ch := range claimChanges {
			w.batch.changes[ch.Path] = ch
		}
	}
}

// pushed records a successful push and applies the batch's Secrets.
func (w *writer) pushed(ctx context.Context, tree Tree, changes []FileChange, attempt int) {
	w.head, w.pushErr, w.started = tree, nil, time.Time{}
	w.res.Commit = tree.Commit()
	w.res.Pushes++
	for _, path := range sortedKeys(w.batch.issued) {
		w.res.Issued = append(w.res.Issued, w.batch.issued[path])
	}
	w.noteCommitted(changes)
	w.r.log.Info("pushed", "commit", w.res.Commit, "files", len(changes), "issued", len(w.batch.issued), "attempt", attempt)
	w.r.applyIssued(ctx, w.res, w.batch)
	for _, ch := range changes {
		if ch.Delete {
			w.res.deleted = append(w.res.deleted, ch.Path)
		}
	}
	// Pushed and applied: the private keys of the certificates this batch
	// issued are in Git, encrypted, and nothing reads them here again.
	for path := range w.batch.issued {
		if s := w.batch.secrets[path]; s != nil {
			forgetKeys(s)
		}
	}
	w.batch = newOutcome()
}

// noteCommitted brings res.Records (the committed state the pass reports)
// up to date with pushed changes. Until the first push it is the pass's
// own state, which the plan still reads, so it is copied once; after
// that it is updated in place: copying it on every push would cost a
// pass ordering n certificates in batches of b about n²/b record copies.
func (w *writer) noteCommitted(changes []FileChange) {
	if !w.ownRecords {
		w.res.Records = maps.Clone(w.res.Records)
		if w.res.Records == nil {
			w.res.Records = map[string]committed.Certificate{}
		}
		w.ownRecords = true
	}
	applyRecords(w.r.layout, w.res.Records, changes)
}

// keyData are the entries of an issued Secret that hold its private key.
var keyData = []string{corev1.TLSPrivateKeyKey, render.KeyCombinedPEM, render.KeyDER, render.KeyPKCS12, render.KeyJKS}

// forgetKeys overwrites the private key material of a Secret this pass
// rendered, once it is committed and applied, so the process does not
// hold a readable key until the collector happens to reuse the memory.
// Only for Secrets whose data the pass built itself: ca.crt and the
// truststores may share bytes with an issuer's.
func forgetKeys(s *corev1.Secret) {
	for _, k := range keyData {
		clear(s.Data[k])
		delete(s.Data, k)
	}
}

// localMessage describes a commit that is squashed before it is pushed;
// it is seen only if a crash leaves it for the next pass to push.
func localMessage(changes []FileChange, is *Issued) string {
	if is != nil {
		return fmt.Sprintf("certsync: issued %s (serial %s)\n\nCertificate: %s\nSerial: %s\nNot-After: %s\nReason: %s\n",
			is.Certificate, is.Serial, is.Certificate, is.Serial, is.NotAfter.UTC().Format(time.RFC3339), is.Reason)
	}
	return fmt.Sprintf("certsync: update %s", changes[0].Path)
}

// localOnly reports whether err is a push that failed but left the commit
// safe in the local clone (the remote was away): work may go on.
func (w *writer) localOnly(err error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pushErr != nil && errors.Is(err, w.pushErr)
}

// remoteFile reads a file of the remote head as last pushed or fetched.
func (w *writer) remoteFile(path string) ([]byte, error) {
	w.mu.Lock()
	head := w.head
	w.mu.Unlock()
	return head.ReadFile(path)
}

// pause waits a random time that grows with attempt (up to 100 ms per
// attempt), so agents that lost a push race to each other spread out.
func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(rand.N(time.Duration(attempt) * 100 * time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
