package reconcile

import (
	"context"
	"errors"
	"maps"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// Renewal windows move. A CA that must revoke certificates early (a
// mass revocation) tells its clients through ACME Renewal Information
// (RFC 9773) by moving their suggested windows forward, and asks to be
// polled again after Retry-After. The committed annotations hold the
// window given at issuance; the agent polls the CA when Retry-After has
// passed and plans with what it answers, so a moved window renews at once.

// Window is a renewal window the CA suggested for one committed
// certificate, and when to ask again.
type Window struct {
	Serial     string
	Start, End time.Time
	// NextPoll is when the CA wants to be asked again (its Retry-After).
	NextPoll time.Time
}

const (
	// defaultPollInterval is the time between polls when the CA named
	// none (Let's Encrypt answers 6 hours).
	defaultPollInterval = 6 * time.Hour
	// DefaultPollsPerPass bounds the renewal-info requests of one pass,
	// so a restart with 10,000 certificates spreads them over passes.
	DefaultPollsPerPass = 100
)

// pollWindows asks the CA for the renewal windows of committed ARI
// certificates whose poll time has come, oldest first, at most
// PollsPerPass of them, and feeds the answers to the plan.
func (r *Reconciler) pollWindows(ctx context.Context, p *pass) {
	if r.cfg.Role == RoleApplier {
		return // an applier never talks to a CA
	}
	now := r.cfg.Clock()
	type candidate struct {
		c    *declared.Certificate
		path string
		next time.Time
	}
	var due []candidate
	for i := range p.set.Certificates {
		c := &p.set.Certificates[i]
		paths, _ := p.state.secretPaths(c)
		path := p.state.source(paths)
		rec, ok := p.state.Committed[path]
		if !ok || rec.RenewalWindowStart.IsZero() || p.state.Corrupt[path] != nil || !now.Before(RenewalTime(c, &rec, p.state.Policy)) {
			continue // not from an ARI CA, or already due
		}
		next := rec.IssuedAt.Add(defaultPollInterval)
		if w, known := r.window(path); known && w.Serial == rec.Serial {
			next = w.NextPoll
		}
		if !now.Before(next) {
			due = append(due, candidate{c, path, next})
		}
	}
	if len(due) == 0 {
		return
	}
	sort.Slice(due, func(i, j int) bool { return due[i].next.Before(due[j].next) })
	if len(due) > r.cfg.PollsPerPass {
		due = due[:r.cfg.PollsPerPass]
	}
	issuers := newIssuerCache(r, p, nil)
	moved := 0
	for _, d := range due {
		w, err := r.pollWindow(ctx, p, issuers, d.c, d.path, now)
		if err != nil {
			// Keep the committed window; ask again after the default interval.
			rec := p.state.Committed[d.path]
			r.setWindow(d.path, Window{Serial: rec.Serial, Start: rec.RenewalWindowStart, End: rec.RenewalWindowEnd, NextPoll: now.Add(defaultPollInterval)})
			r.log.Warn("could not ask the CA for a renewal window; keeping the committed one and asking again later", "path", d.path, "error", err)
			continue
		}
		r.setWindow(d.path, w)
		if rec := p.state.Committed[d.path]; !w.Start.Equal(rec.RenewalWindowStart) || !w.End.Equal(rec.RenewalWindowEnd) {
			moved++
			r.log.Info("the CA moved a renewal window", "path", d.path, "start", w.Start, "end", w.End)
		}
	}
	r.log.Info("asked the CA for renewal windows (ARI)", "certificates", len(due), "moved", moved)
}

// pollWindow asks the CA for one certificate's window.
func (r *Reconciler) pollWindow(ctx context.Context, p *pass, issuers *issuerCache, c *declared.Certificate, path string, now time.Time) (Window, error) {
	decl := p.set.IssuerFor(c)
	if decl == nil {
		return Window{}, errors.New("its issuer is not declared")
	}
	if decl.ACME == nil {
		return Window{}, errors.New("its issuer is not an ACME issuer: there is no renewal information to ask for")
	}
	iss, err := issuers.get(ctx, decl)
	if err != nil {
		return Window{}, err
	}
	adv, ok := iss.(issuer.RenewalAdvisor)
	if !ok {
		return Window{}, errors.New("the issuer has no renewal information")
	}
	s, err := r.decryptSecret(ctx, p, path)
	if err != nil {
		return Window{}, err
	}
	chain, err := pki.ParseChain(s.Data[corev1.TLSCertKey])
	if err != nil || len(chain) == 0 {
		return Window{}, errors.New("no certificate in tls.crt")
	}
	got, ok, err := adv.RenewalWindow(ctx, chain[0])
	if err == nil && !ok {
		err = errors.New("the CA suggested no window")
	}
	if err != nil {
		return Window{}, err
	}
	w := Window{Serial: p.state.Committed[path].Serial, Start: got.Start, End: got.End, NextPoll: got.RetryAfter}
	if w.NextPoll.IsZero() || !w.NextPoll.After(now) {
		w.NextPoll = now.Add(defaultPollInterval)
	}
	return w, nil
}

func (r *Reconciler) window(path string) (Window, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.windows[path]
	return w, ok
}

func (r *Reconciler) setWindow(path string, w Window) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows[path] = w
}

// Windows returns the polled renewal windows by path, to be saved across
// restarts (see Config.Windows).
func (r *Reconciler) Windows() map[string]Window {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.windows)
}

// windowsFor returns the polled windows that still describe the
// committed certificates, for the plan; stale ones are forgotten.
func (r *Reconciler) windowsFor(recs map[string]committed.Certificate) map[string]Window {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]Window{}
	for path, w := range r.windows {
		if rec, ok := recs[path]; ok && rec.Serial == w.Serial {
			out[path] = w
			continue
		}
		delete(r.windows, path)
	}
	return out
}
