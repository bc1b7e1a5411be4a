package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/certsync/certsync/committed"
)

// Order claims keep several agents from ordering the same certificate.
// Before ordering, an agent pushes a claim naming the certificates; Git
// accepts only a push that descends from the remote head, so when two
// agents claim at once one push loses, and the loser re-plans on the
// winner's head, where those certificates are held (Calculate turns them
// into Wait). A claim lapses at its expiry; the holder renews it while
// its orders run and removes it with the commit that carries the results.

// claim adds the paths that are still due to this agent's claim, pushes
// it, and returns those it now holds: none when others claimed or
// committed them first. Paths claimed earlier and not released stay
// claimed. An error means the claim could not be pushed; the caller must
// not order without one.
func (w *writer) claim(ctx context.Context, paths []string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.r.cfg.NoClaims {
		var held []string
		for _, path := range paths {
			if w.stillDueLocked(path) {
				held = append(held, path)
			}
		}
		return held, nil
	}
	if w.claiming == nil {
		w.claiming = map[string]bool{}
	}
	var added []string
	for _, path := range paths {
		if !w.claiming[path] && w.stillDueLocked(path) {
			w.claiming[path] = true
			added = append(added, path)
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	w.claimUntil = w.r.cfg.Clock().Add(w.r.cfg.ClaimTTL)
	err := w.commitClaimLocked(ctx)
	if err == nil {
		err = w.flushLocked(ctx)
	}
	if err != nil {
		for _, path := range added {
			delete(w.claiming, path)
		}
		return nil, fmt.Errorf("claim %d certificates in Git before ordering them: %w", len(added), err)
	}
	var held []string
	for _, path := range added {
		if w.claiming[path] { // a re-plan after a lost race drops what others hold
			held = append(held, path)
		}
	}
	return held, nil
}

// renewClaim pushes the claim again with a later expiry, for orders that
// outlast half of it.
func (w *writer) renewClaim(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.claiming) == 0 {
		return nil
	}
	w.claimUntil = w.r.cfg.Clock().Add(w.r.cfg.ClaimTTL)
	if err := w.commitClaimLocked(ctx); err != nil {
		return err
	}
	return w.flushLocked(ctx)
}

// keepClaim renews the claim every third of its lifetime until stop is
// called.
func (w *writer) keepClaim(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(w.r.cfg.ClaimTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := w.renewClaim(ctx); err != nil {
					w.r.log.Warn("could not renew the order claim; other agents may order these certificates once it lapses", "error", err)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// releaseClaim drops paths from the claim; with release the claim file is
// rewritten (or removed) in the next commit, the one carrying the results
// if there are any; without, it is left to lapse.
func (w *writer) releaseClaim(ctx context.Context, paths []string, release bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, path := range paths {
		delete(w.claiming, path)
	}
	if !release {
		return nil
	}
	return w.commitClaimLocked(ctx)
}

// commitClaimLocked commits the claim's current state locally and adds it
// to the batch.
func (w *writer) commitClaimLocked(ctx context.Context) error {
	changes, err := w.claimChangesLocked()
	if err != nil || len(changes) == 0 {
		return err
	}
	local, err := w.r.cfg.Repo.Commit(context.WithoutCancel(ctx), w.local, changes, localMessage(changes, nil))
	if err != nil {
		return fmt.Errorf("commit the order claim locally: %w", err)
	}
	w.local = local
	for _, ch := range changes {
		w.batch.changes[ch.Path] = ch
	}
	return nil
}

// claimChangesLocked writes this agent's claim file (or removes it when
// nothing is claimed) and removes other agents' claims that have lapsed.
func (w *writer) claimChangesLocked() ([]FileChange, error) {
	if w.r.cfg.NoClaims {
		return nil, nil
	}
	own := committed.ClaimPath(w.r.cfg.Agent)
	var changes []FileChange
	if len(w.claiming) > 0 {
		content, err := committed.MarshalClaim(committed.Claim{Agent: w.r.cfg.Agent, Expires: w.claimUntil, Certificates: sortedKeys(w.claiming)})
		if err != nil {
			return nil, err
		}
		changes = append(changes, FileChange{Path: own, Content: content})
	} else if _, err := w.head.ReadFile(own); err == nil {
		changes = append(changes, FileChange{Path: own, Delete: true})
	} else {
		delete(w.batch.changes, own) // never pushed: nothing to remove
	}
	now := w.r.cfg.Clock()
	for path, cl := range w.p.claims {
		if path == own || now.Before(cl.Expires) {
			continue
		}
		if _, err := w.head.ReadFile(path); err == nil {
			changes = append(changes, FileChange{Path: path, Delete: true})
		}
	}
	return changes, nil
}
