// Package reconcile decides what a pass must do and does it.
//
// A pass is a straight list of steps, each returning what it did:
//
//  1. read the repository (declared and committed state) and the cluster;
//  2. Calculate a Plan: a pure function of those states and the time;
//  3. issue what is due, render and encrypt it; render again what
//     changed in a Secret but not in its certificate (rerender.go);
//  4. commit everything in one commit and push, re-planning on a lost race;
//  5. apply the committed Secrets to the cluster and prune what was removed.
//
// Calculate does no I/O and reads no clock, so every decision is tested with
// plain values; the effects sit behind the small interfaces in seams.go.
package reconcile

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// ActionKind says what an Action does.
type ActionKind string

const (
	// Issue orders a certificate that has no committed Secret.
	Issue ActionKind = "Issue"
	// Reissue orders a new certificate because the committed one no longer
	// matches its declaration.
	Reissue ActionKind = "Reissue"
	// Renew orders a new certificate because the renewal time is reached.
	Renew ActionKind = "Renew"
	// Reencrypt rewrites a committed file for new SOPS recipients without
	// ordering anything.
	Reencrypt ActionKind = "Reencrypt"
	// Rerender renders a committed certificate's Secret again, and every
	// cluster's copy of it, because what the Secret holds besides the
	// certificate changed (additional output formats, keystores, their
	// passwords, the secretTemplate's labels and annotations): the same
	// certificate and key, decrypted with the agent's key, nothing ordered.
	Rerender ActionKind = "Rerender"
	// Apply puts the committed Secret into the cluster.
	Apply ActionKind = "Apply"
	// PruneFile removes a committed Secret whose declaration is gone.
	PruneFile ActionKind = "PruneFile"
	// PruneSecret removes a certsync-owned Secret from the cluster whose
	// declaration is gone.
	PruneSecret ActionKind = "PruneSecret"
	// Copy writes the committed certificate of one cluster for another
	// cluster that receives it too (a cluster added to its delivery, or a
	// copy that fell behind), without ordering anything.
	Copy ActionKind = "Copy"
	// Wait records a certificate that is due but backing off after
	// failures, or being ordered by another agent (see committed.Claim).
	Wait ActionKind = "Wait"
)

// Orders reports whether the action needs a new certificate from the CA.
func (k ActionKind) Orders() bool { return k == Issue || k == Reissue || k == Renew }

// Action is one thing a pass does, and why.
type Action struct {
	Kind ActionKind
	// Certificate is the declaration acted on; nil for prunes.
	Certificate *declared.Certificate
	// Committed is the current record in Git, nil when there is none.
	Committed *committed.Certificate
	// Path is the repository file written or removed. For an order it is
	// the copy of the agent's own cluster when that cluster receives the
	// certificate, else the first receiving cluster's.
	Path string
	// Copies are the other files an order writes: one per further cluster
	// that receives the certificate. One order serves them all.
	Copies []string
	// From is the committed file an order renews or a Copy copies, when
	// it is not Path.
	From string
	// Namespace and Name identify the Secret in the cluster.
	Namespace, Name string
	Reason          string
	// FreshKey is set on orders whose committed key must not be reused,
	// whatever rotationPolicy says: it was exposed or cannot be trusted.
	FreshKey bool
	// HeldBy names the agent whose order claim makes this a Wait.
	HeldBy string
	// WaitsFor names the Secret ("namespace/name") of the CA whose
	// issuance this Wait waits for (a ca issuer's Secret not issued yet).
	WaitsFor string
}

// source is the committed file the action reads: From, else Path.
func (a Action) source() string {
	if a.From != "" {
		return a.From
	}
	return a.Path
}

// Subject names what the action is about, for tables and commit messages.
func (a Action) Subject() string {
	if a.Certificate != nil {
		return a.Certificate.Key()
	}
	return a.Namespace + "/" + a.Name
}

// Observed is what the cluster holds for one certsync-owned Secret.
type Observed struct {
	Serial  string
	Drifted bool
	// Rendered is what the live Secret was rendered with beyond its
	// certificate (see rendered): a Rerender keeps the serial, so the
	// serial alone does not tell a stale copy.
	Rendered string
	// Certificate and Source are the certsync.io annotations of the live
	// Secret: which declaration made it.
	Certificate, Source string
}

// Failure is the backoff state of a certificate whose last order failed.
type Failure struct {
	Count      int
	Last       time.Time
	RetryAfter time.Time
	Err        string
	// Permanent failures (a malformed request, an unauthorized account, a
	// rejected identifier, CAA) recur until something changes: they wait
	// for the declaration or its issuer to change instead of a timer.
	Permanent bool `json:",omitempty"`
	// Fingerprint is the declaration and issuer the order was made for;
	// when they change, the certificate is retried at once.
	Fingerprint string `json:",omitempty"`
}

// Policy holds the knobs of the planner. Zero values are the defaults.
type Policy struct {
	// MaxPruneShare is the largest share of committed Secrets removed in one
	// pass; more is refused unless ForcePrune. Default: 0.10.
	MaxPruneShare float64
	ForcePrune    bool
	// BackoffBase and BackoffMax shape the retry delay after failed orders,
	// base × 2^(n−1) capped at max, as cert-manager does.
	// Defaults: 1 hour and 32 hours.
	BackoffBase, BackoffMax time.Duration
	// RenewalJitter is the largest share of the renew-before period a
	// renewal is moved earlier, so certificates issued together do not
	// renew in the same second. Default: 0.02 (2%).
	RenewalJitter float64
}

func (p Policy) withDefaults() Policy {
	if p.MaxPruneShare == 0 {
		p.MaxPruneShare = 0.10
	}
	if p.BackoffBase == 0 {
		p.BackoffBase = time.Hour
	}
	if p.BackoffMax == 0 {
		p.BackoffMax = 32 * time.Hour
	}
	if p.RenewalJitter == 0 {
		p.RenewalJitter = 0.02
	}
	return p
}

// State is everything Calculate looks at.
type State struct {
	Now time.Time
	// Cluster is the agent's own cluster: the one it applies to.
	Cluster string
	// Layout is where each cluster's Secrets are committed
	// (certsync.yaml output.secrets). Files of the default layout found
	// under another are moved: copied, then pruned once the copy is there.
	Layout committed.Layout
	// Targets are the clusters that receive each Certificate, by key
	// ("namespace/name"); a Certificate without an entry goes to Cluster.
	Targets map[string][]string
	// ApplyOnly plans only the cluster's side (Apply, PruneSecret): an
	// applier orders, copies and commits nothing.
	ApplyOnly bool
	// Certificates are the valid declarations.
	Certificates []declared.Certificate
	// Committed holds the readable Secret records of every cluster, by path;
	// Unreadable the ones whose plaintext metadata could not be read.
	Committed  map[string]committed.Certificate
	Unreadable map[string]error
	// Corrupt are committed files whose content failed verification: the
	// SOPS MAC did not match, or the plaintext metadata the planner reads
	// disagrees with the certificate inside. Their metadata is not trusted.
	Corrupt map[string]error
	// ClusterKnown is false when no cluster is configured: nothing is
	// applied or pruned there. Observed is keyed "namespace/name".
	ClusterKnown bool
	Observed     map[string]Observed
	// DesiredRecipients are the recipients .sops.yaml asks for, by path;
	// a path without an entry is not checked.
	DesiredRecipients map[string][]string
	// Accounts are the recipients of each committed ACME account key file;
	// AccountsExposed the plaintext data keys of account files that hold
	// any (a .sops.yaml rule that left them unencrypted).
	Accounts        map[string][]string
	AccountsExposed map[string][]string
	// Failures are keyed by Certificate key ("namespace/name").
	Failures map[string]Failure
	// Fingerprints digest each Certificate with its issuer, by key; a
	// failure recorded under another fingerprint no longer holds it back.
	Fingerprints map[string]string
	// PruneBlockers are the problems of this pass (a declaration that
	// failed to parse, an unrecognised cert-manager document, an unreadable
	// file). While any stands nothing is pruned: a typo in a kind must not
	// look like a removed Certificate and delete a live Secret.
	PruneBlockers []string
	// RenewRequests are manual renewal requests by Certificate key, with
	// the time they were made.
	RenewRequests map[string]time.Time
	// Agent is this agent's name; Claims are the order claims committed
	// by agents, by certificate path. An unexpired claim of another agent
	// holds the certificate: it is being ordered elsewhere.
	Agent  string
	Claims map[string]committed.Claim
	// Windows are renewal windows the CA suggested since issuance (ACME
	// ARI), by path; they replace the committed window of the same serial.
	Windows map[string]Window
	// Signing says which Secrets `ca` issuers sign with and which exist:
	// a Certificate whose CA is not there yet waits for it (ca_plan.go).
	Signing Signing
	// NoKey are the committed files, by path, this agent tried to decrypt
	// and could not (it holds no key for them): a Rerender needs to, so
	// for those the plan falls back (see planRerender). A path not listed
	// is planned as decryptable; the runner tries the files a plan would
	// re-render before it acts (see calculate), a dry run does not.
	NoKey map[string]bool
	// KeystorePasswords identify, by Certificate key, the keystore
	// passwords a Certificate's Secret would be rendered with now, when
	// they come from a Secret of the repository (keystorePasswordHashes);
	// a new value re-renders the keystores.
	KeystorePasswords map[string]string
	Policy            Policy

	// unrendered collects the re-renders this agent cannot do and that
	// nothing else does (no key; see planRerender), for one warning.
	unrendered []string
}

// Plan is the outcome of Calculate.
type Plan struct {
	Actions []Action
	// NextRenewal is the earliest future renewal time (zero when none), so
	// a daemon knows when the next pass has work.
	NextRenewal time.Time
	// Warnings are decisions the user should hear about (a refused prune).
	Warnings []string
}

// HasChanges reports whether executing the plan would change Git or the
// cluster.
func (p Plan) HasChanges() bool {
	for _, a := range p.Actions {
		if a.Kind != Wait {
			return true
		}
	}
	return false
}

// Count returns the number of actions of a kind.
func (p Plan) Count(k ActionKind) int {
	n := 0
	for _, a := range p.Actions {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// Calculate decides what a pass must do. It is pure: the same State always
// gives the same Plan, and applying a Plan then calculating again on the
// resulting state gives an empty one.
func Calculate(s State) Plan {
	s.Policy = s.Policy.withDefaults()
	var p Plan
	wanted := map[string]bool{}        // paths declared, in every cluster
	wantedSecrets := map[string]bool{} // "namespace/name" declared for this cluster
	for i := range s.Certificates {
		c := &s.Certificates[i]
		paths, own := s.secretPaths(c)
		for _, path := range paths {
			wanted[path] = true
		}
		if own != "" {
			wantedSecrets[c.Namespace+"/"+c.SecretName] = true
		}
		if s.ApplyOnly {
			if own != "" {
				planApply(&s, &p, Action{Certificate: c, Path: own, Namespace: c.Namespace, Name: c.SecretName})
			}
			continue
		}
		planCertificate(&s, &p, c, paths, own)
	}
	planPrunes(&s, &p, wanted, wantedSecrets)
	if !s.ApplyOnly {
		planAccounts(&s, &p)
	}
	if n := len(s.unrendered); n > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("not re-rendering %d %s (first: %s): this agent holds no key to decrypt the committed Secret; an agent that holds one re-renders it without an order, else the next renewal renders it",
			n, plural(n, "certificate"), s.unrendered[0]))
	}
	sort.SliceStable(p.Actions, func(i, j int) bool { return p.Actions[i].Path < p.Actions[j].Path })
	return p
}

// secretPaths lists the files of c, one per receiving cluster, with the
// agent's own cluster first when it receives c (own is then its path).
func (s *State) secretPaths(c *declared.Certificate) (paths []string, own string) {
	clusters, ok := s.Targets[c.Key()]
	if !ok {
		clusters = []string{s.Cluster}
	}
	for _, cl := range clusters {
		path := s.Layout.SecretPath(cl, c.Namespace, c.SecretName)
		if cl == s.Cluster {
			own = path
			continue
		}
		paths = append(paths, path)
	}
	if own != "" {
		paths = append([]string{own}, paths...)
	}
	return paths, own
}

func planAccounts(s *State, p *Plan) {
	for path, have := range s.Accounts {
		if keys := s.AccountsExposed[path]; len(keys) > 0 {
			p.Actions = append(p.Actions, Action{Kind: Reencrypt, Path: path, Name: path,
				Reason: fmt.Sprintf("ACME account key committed in plaintext (%s): encrypting it; treat the account key as exposed", strings.Join(keys, ","))})
			continue
		}
		if want, check := s.DesiredRecipients[path]; check && !slices.Equal(sorted(want), have) {
			p.Actions = append(p.Actions, Action{Kind: Reencrypt, Path: path, Name: path,
				Reason: fmt.Sprintf("ACME account key: recipients changed: %s → %s", strings.Join(have, ","), strings.Join(sorted(want), ","))})
		}
	}
}

// source picks the committed copy a certificate is judged by: the newest
// sound one (readable, verified, encrypted), preferring the first path on
// a tie; when none is sound, the first path that has anything committed;
// else the first path.
func (s *State) source(paths []string) string {
	best := ""
	for _, path := range append(slices.Clip(paths), s.movedCopies(paths)...) {
		rec, ok := s.Committed[path]
		if !ok || s.Unreadable[path] != nil || s.Corrupt[path] != nil || exposed(&rec) {
			continue
		}
		if best == "" || rec.NotBefore.After(s.Committed[best].NotBefore) {
			best = path
		}
	}
	if best != "" {
		return best
	}
	for _, path := range paths {
		if _, ok := s.Committed[path]; ok || s.Unreadable[path] != nil {
			return path
		}
	}
	return paths[0]
}

// movedCopies are the files of the default layout that paths had before
// certsync.yaml moved the Secrets to another folder: the same certificate,
// which is copied to its new place, never ordered again.
func (s *State) movedCopies(paths []string) []string {
	if s.Layout == (committed.Layout{}) {
		return nil
	}
	var out []string
	for _, path := range paths {
		if cluster, ns, name, moved, ok := s.Layout.ParseSecretPath(path); ok && !moved {
			if old := committed.SecretPath(cluster, ns, name); hasRecord(s.Committed, old) {
				out = append(out, old)
			}
		}
	}
	return out
}

// exposedCopy finds another copy of the same certificate (same serial, so
// the same key) committed in the clear.
func (s *State) exposedCopy(paths []string, from string, serial string) (string, *committed.Certificate) {
	for _, path := range paths {
		if rec, ok := s.Committed[path]; ok && path != from && rec.Serial == serial && exposed(&rec) {
			found := rec // only the copy returned is made on the heap
			return path, &found
		}
	}
	return "", nil
}

// claimedBy returns the unexpired claim of another agent on any copy.
func (s *State) claimedBy(paths []string) (committed.Claim, bool) {
	for _, path := range paths {
		if cl, held := s.Claims[path]; held && cl.Agent != s.Agent && cl.Holds(path, s.Now) {
			return cl, true
		}
	}
	return committed.Claim{}, false
}

// planCertificate decides one certificate across the clusters that
// receive it: at most one order for all its copies; otherwise copies for
// clusters that lack the current certificate, re-encryptions, and the
// apply of the agent's own copy.
func planCertificate(s *State, p *Plan, c *declared.Certificate, paths []string, own string) {
	from := s.source(paths)
	primary := paths[0]
	base := Action{Certificate: c, Path: primary, Copies: paths[1:], Namespace: c.Namespace, Name: c.SecretName}
	if from != primary {
		base.From = from
	}
	ownAction := Action{Certificate: c, Path: own, Namespace: c.Namespace, Name: c.SecretName}
	rec, ok := s.Committed[from]
	var kind ActionKind
	var reason string
	exposedPath, exposedRec := s.exposedCopy(paths, from, rec.Serial)
	switch {
	case s.Unreadable[from] != nil:
		kind, reason = Reissue, "committed file unreadable: "+s.Unreadable[from].Error()
	case !ok:
		kind, reason = Issue, "no Secret committed"
	case s.Corrupt[from] != nil:
		base.Committed = &rec
		kind, reason, base.FreshKey = Reissue, "committed file failed verification: "+s.Corrupt[from].Error(), true
	case exposed(&rec) && c.PrivateKey.RotationPolicy == declared.RotateNever:
		base.Committed = &rec
		a := base
		a.Kind, a.Path, a.Copies, a.From = Reencrypt, from, nil, ""
		a.Reason = fmt.Sprintf("committed with %s in plaintext: encrypting it; the key is kept (rotationPolicy Never) although it was exposed", exposedKeys(&rec))
		p.Actions = append(p.Actions, a)
		planApply(s, p, ownAction)
		return
	case exposed(&rec):
		base.Committed = &rec
		kind, reason, base.FreshKey = Reissue, fmt.Sprintf("private key exposed: %s was committed in plaintext; re-issuing with a new key", exposedKeys(&rec)), true
	case exposedRec != nil && c.PrivateKey.RotationPolicy != declared.RotateNever:
		base.Committed = &rec
		kind, reason, base.FreshKey = Reissue, fmt.Sprintf("private key exposed: %s was committed in plaintext in %s; re-issuing with a new key", exposedKeys(exposedRec), exposedPath), true
	default:
		base.Committed = &rec
		kind, reason = reissueReason(c, &rec)
		moved := ""
		if w, polled := s.window(paths, rec.Serial); polled && !w.Start.IsZero() && !w.Start.Equal(rec.RenewalWindowStart) {
			rec.RenewalWindowStart, rec.RenewalWindowEnd = w.Start, w.End
			moved = " (the CA moved the renewal window)"
		}
		if kind == "" {
			renewAt := RenewalTime(c, &rec, s.Policy)
			if req, asked := s.RenewRequests[c.Key()]; asked && !req.Before(rec.IssuedAt) {
				kind, reason = Renew, "renewal requested at "+committed.FormatTime(req)
			} else if !s.Now.Before(renewAt) {
				kind, reason = Renew, "renewal time "+committed.FormatTime(renewAt)+" reached"+moved+" (expires "+committed.FormatTime(rec.NotAfter)+")"
			} else if p.NextRenewal.IsZero() || renewAt.Before(p.NextRenewal) {
				p.NextRenewal = renewAt
			}
		}
		if kind == "" {
			// Neither due nor changed: only what the Secret holds
			// besides the certificate may be out of date. (An order
			// renders everything anew, so it never needs this.)
			var rerendered bool
			if kind, reason, rerendered = planRerender(s, p, c, base, &rec); rerendered {
				planApply(s, p, ownAction) // the old render, until the new one is applied
				return
			}
		}
	}
	if kind != "" {
		if planSignerWait(s, p, base, ownAction, reason) {
			return
		}
		if cl, held := s.claimedBy(paths); held {
			a := base
			a.Kind, a.HeldBy = Wait, cl.Agent
			a.Reason = fmt.Sprintf("%s; agent %s is ordering it (claim until %s)", reason, cl.Agent, committed.FormatTime(cl.Expires))
			p.Actions = append(p.Actions, a)
			if p.NextRenewal.IsZero() || cl.Expires.Before(p.NextRenewal) {
				p.NextRenewal = cl.Expires
			}
			planApply(s, p, ownAction)
			return
		}
		if wait, next, holding := s.backoff(c); holding {
			a := base
			a.Kind, a.Reason = Wait, reason+"; "+wait
			p.Actions = append(p.Actions, a)
			if !next.IsZero() && (p.NextRenewal.IsZero() || next.Before(p.NextRenewal)) {
				p.NextRenewal = next
			}
			planApply(s, p, ownAction)
			return
		}
		a := base
		a.Kind, a.Reason = kind, reason
		p.Actions = append(p.Actions, a)
		return // the new Secret is applied right after it is committed
	}
	copied := false
	for _, path := range paths {
		if path == from {
			planRecipients(s, p, base, path, &rec)
			continue
		}
		other, have := s.Committed[path]
		var why string
		switch {
		case s.Unreadable[path] != nil:
			why = "committed file unreadable"
		case !have:
			why = "cluster " + s.clusterOf(path) + " receives it and has no copy"
		case s.Corrupt[path] != nil:
			why = "committed file failed verification"
		case exposed(&other):
			why = fmt.Sprintf("%s committed in plaintext", exposedKeys(&other))
		case other.Serial != rec.Serial:
			why = fmt.Sprintf("serial %s is behind %s", other.Serial, rec.Serial)
		case rendered(&other) != rendered(&rec):
			why = "rendered with other outputs, secretTemplate or keystore passwords"
		default:
			planRecipients(s, p, base, path, &other)
			continue
		}
		a := base
		a.Kind, a.Path, a.From, a.Copies, a.Committed = Copy, path, from, nil, &rec
		a.Reason = fmt.Sprintf("%s: copying serial %s from %s", why, rec.Serial, from)
		p.Actions = append(p.Actions, a)
		copied = copied || path == own
	}
	if !copied {
		planApply(s, p, ownAction) // a copy to this cluster is applied once committed
	}
}

// planRecipients re-encrypts a sound copy whose recipients differ from
// what .sops.yaml now asks for its path.
func planRecipients(s *State, p *Plan, base Action, path string, rec *committed.Certificate) {
	if want, check := s.DesiredRecipients[path]; check && !slices.Equal(sorted(want), rec.Recipients) {
		a := base
		a.Kind, a.Path, a.From, a.Copies, a.Committed = Reencrypt, path, "", nil, recordRef(*rec)
		a.Reason = fmt.Sprintf("recipients changed: %s → %s", strings.Join(rec.Recipients, ","), strings.Join(sorted(want), ","))
		p.Actions = append(p.Actions, a)
	}
}

// window is the renewal window polled for the certificate with serial,
// whichever copy it was recorded under.
func (s *State) window(paths []string, serial string) (Window, bool) {
	for _, path := range paths {
		if w, ok := s.Windows[path]; ok && w.Serial == serial {
			return w, true
		}
	}
	return Window{}, false
}

func (s *State) clusterOf(path string) string {
	cluster, _, _, _, _ := s.Layout.ParseSecretPath(path)
	return cluster
}

// planApply puts the agent's own committed copy into the cluster when the
// cluster's copy is missing, older or edited. base.Path is "" when the
// agent's cluster does not receive the certificate.
func planApply(s *State, p *Plan, base Action) {
	if !s.ClusterKnown || base.Path == "" {
		return
	}
	rec, committedOK := s.Committed[base.Path]
	if !committedOK {
		return
	}
	obs, present := s.Observed[base.Namespace+"/"+base.Name]
	var reason string
	switch {
	case !present:
		reason = "missing in the cluster"
	case obs.Serial != rec.Serial:
		reason = fmt.Sprintf("cluster has serial %q, Git has %q", obs.Serial, rec.Serial)
	case obs.Rendered != rendered(&rec):
		reason = fmt.Sprintf("cluster has serial %q rendered with other outputs, secretTemplate or keystore passwords than Git", rec.Serial)
	case obs.Drifted:
		reason = "edited in the cluster; restoring from Git"
	default:
		return
	}
	a := base
	a.Kind, a.Reason, a.Committed = Apply, reason, recordRef(rec)
	p.Actions = append(p.Actions, a)
}

// reissueReason compares the committed record with its declaration and
// says what differs, in the order a reviewer would ask about it.
func reissueReason(c *declared.Certificate, rec *committed.Certificate) (ActionKind, string) {
	switch {
	case rec.NotAfter.IsZero() || rec.Serial == "":
		return Reissue, "committed metadata has no notAfter or serial"
	case !slices.Equal(sorted(rec.DNSNames), sorted(c.DNSNames)):
		return Reissue, fmt.Sprintf("dnsNames changed: [%s] → [%s]", strings.Join(rec.DNSNames, ","), strings.Join(c.DNSNames, ","))
	case rec.CommonName != "" && rec.CommonName != c.CommonName:
		// Only when the certificate carries a CN: CAs may drop it (Let's
		// Encrypt's newer profiles do); a changed request still shows in
		// the spec hash below.
		return Reissue, fmt.Sprintf("commonName changed: %q → %q", rec.CommonName, c.CommonName)
	case rec.IssuerKind != c.IssuerRef.Kind || rec.IssuerName != c.IssuerRef.Name:
		return Reissue, fmt.Sprintf("issuer changed: %s/%s → %s/%s", rec.IssuerKind, rec.IssuerName, c.IssuerRef.Kind, c.IssuerRef.Name)
	case rec.PrivateKey != c.PrivateKey.String():
		return Reissue, fmt.Sprintf("private key changed: %s → %s", rec.PrivateKey, c.PrivateKey)
	case rec.SpecHash != c.SpecHash():
		return Reissue, "spec changed since issuance (a field that shapes the certificate: commonName, duration, isCA, ...)"
	}
	// What the Secret holds besides the certificate (output formats,
	// keystores, secretTemplate) is not a reason to order: see
	// planRerender.
	return "", ""
}

// RenewalTime is when a committed certificate should be renewed, as
// cert-manager computes it: notAfter − renewBefore, where renewBefore is
// spec.renewBefore, or spec.renewBeforePercentage of the lifetime, or a
// third of the lifetime; a renewBefore not shorter than the lifetime falls
// back to the third. When the CA suggested an ARI window, a point inside it
// is used instead. Either way a small deterministic jitter, derived from
// the serial, spreads certificates that were issued together.
func RenewalTime(c *declared.Certificate, rec *committed.Certificate, pol Policy) time.Time {
	pol = pol.withDefaults()
	spread := jitter(rec.Serial)
	if !rec.RenewalWindowStart.IsZero() && rec.RenewalWindowEnd.After(rec.RenewalWindowStart) {
		w := rec.RenewalWindowEnd.Sub(rec.RenewalWindowStart)
		return rec.RenewalWindowStart.Add(time.Duration(float64(w) * spread)).Truncate(time.Second)
	}
	lifetime := rec.NotAfter.Sub(rec.NotBefore)
	before := c.RenewBefore
	if c.RenewBeforePercentage > 0 {
		before = lifetime * time.Duration(c.RenewBeforePercentage) / 100
	}
	if before <= 0 || before >= lifetime {
		before = lifetime / 3
	}
	before += time.Duration(float64(before) * pol.RenewalJitter * spread)
	return rec.NotAfter.Add(-before).Truncate(time.Second)
}

// backoff says whether an earlier failure still holds c back, why, and
// until when (zero for a permanent failure: until something changes). A
// changed declaration or issuer, or a renewal request made after the
// failure (certsync renew), releases it at once.
func (s *State) backoff(c *declared.Certificate) (reason string, next time.Time, holding bool) {
	f, failed := s.Failures[c.Key()]
	if !failed {
		return "", time.Time{}, false
	}
	if f.Fingerprint != "" && s.Fingerprints != nil && f.Fingerprint != s.Fingerprints[c.Key()] {
		return "", time.Time{}, false
	}
	if req, asked := s.RenewRequests[c.Key()]; asked && req.After(f.Last) {
		return "", time.Time{}, false
	}
	if f.Permanent {
		return fmt.Sprintf("not retrying until the Certificate or its issuer changes, or `certsync renew %s` (permanent failure %d: %s)", c.Key(), f.Count, f.Err), time.Time{}, true
	}
	next = NextAttempt(f, s.Policy)
	if !s.Now.Before(next) {
		return "", time.Time{}, false
	}
	return fmt.Sprintf("retrying after %s (failure %d: %s)", committed.FormatTime(next), f.Count, f.Err), next, true
}

// NextAttempt is when a failed certificate may be ordered again.
func NextAttempt(f Failure, pol Policy) time.Time {
	pol = pol.withDefaults()
	delay := pol.BackoffBase
	for i := 1; i < f.Count && delay < pol.BackoffMax; i++ {
		delay *= 2
	}
	delay = min(delay, pol.BackoffMax)
	next := f.Last.Add(delay)
	if f.RetryAfter.After(next) {
		next = f.RetryAfter
	}
	return next
}

// jitter maps a serial to [0,1) so the same certificate always gets the
// same offset and a pass stays a pure function of its inputs.
func jitter(serial string) float64 {
	h := fnv.New32a()
	h.Write([]byte(serial))
	return float64(h.Sum32()%10000) / 10000
}

// planPrunes removes what no declaration wants any more: committed files
// (in any cluster's folder) and the Secrets this agent owns in its own
// cluster. Nothing is pruned in a pass that has any problem, and one limit
// covers files and Secrets together: what counts is how many copies
// (cluster/namespace/name) would disappear. An applier prunes only
// Secrets: the files are the issuer's.
func planPrunes(s *State, p *Plan, wanted, wantedSecrets map[string]bool) {
	var prunes []Action
	if !s.ApplyOnly {
		for path, rec := range s.Committed {
			if wanted[path] {
				continue
			}
			if to, moved := s.movedTo(path, wanted); moved {
				if now, ok := s.Committed[to]; ok && now.Serial == rec.Serial && s.Corrupt[to] == nil && !exposed(&now) {
					// Nothing is lost: no limit, no blocker holds it.
					p.Actions = append(p.Actions, Action{Kind: PruneFile, Path: path, Namespace: rec.Namespace, Name: rec.SecretName, Committed: recordRef(rec),
						Reason: "moved to " + to + " (certsync.yaml output.secrets)"})
				}
				continue // kept until its copy is committed
			}
			prunes = append(prunes, Action{Kind: PruneFile, Path: path, Namespace: rec.Namespace, Name: rec.SecretName, Committed: recordRef(rec),
				Reason: s.pruneFileReason(path)})
		}
		for path := range s.Unreadable {
			if _, ns, name, _, ok := s.Layout.ParseSecretPath(path); ok && !wanted[path] {
				prunes = append(prunes, Action{Kind: PruneFile, Path: path, Namespace: ns, Name: name, Reason: s.pruneFileReason(path)})
			}
		}
	}
	if s.ClusterKnown {
		for key := range s.Observed {
			if !wantedSecrets[key] {
				ns, name, _ := strings.Cut(key, "/")
				prunes = append(prunes, Action{Kind: PruneSecret, Path: s.Layout.SecretPath(s.Cluster, ns, name), Namespace: ns, Name: name,
					Reason: "Secret owned by this agent that no Certificate delivers to cluster " + s.Cluster + " any more"})
			}
		}
	}
	if len(prunes) == 0 {
		return
	}
	gone := map[string]bool{}
	for _, a := range prunes {
		gone[a.Path] = true
	}
	if n := len(s.PruneBlockers); n > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("not pruning %d %s: this pass has %d %s (first: %s); nothing is pruned while any problem stands, so a typo cannot delete a live Secret — fix them and the next pass prunes",
			len(gone), plural(len(gone), "certificate"), n, plural(n, "problem"), s.PruneBlockers[0]))
		return
	}
	all := s.copies()
	limit := max(1, int(s.Policy.MaxPruneShare*float64(all)))
	if len(gone) > limit && !s.Policy.ForcePrune {
		p.Warnings = append(p.Warnings, fmt.Sprintf("refusing to prune %d of %d certificates (files and Secrets) in one pass (limit %.0f%%): if the declarations were really removed, run again with --force-prune", len(gone), all, s.Policy.MaxPruneShare*100))
		return
	}
	p.Actions = append(p.Actions, prunes...)
}

// copies counts every copy (cluster/namespace/name) committed or observed,
// what the prune limit is a share of. It is counted only when something
// would be pruned: an idle pass builds no set of 10,000 paths for it.
func (s *State) copies() int {
	all := map[string]bool{}
	if !s.ApplyOnly {
		for path := range s.Committed {
			all[path] = true
		}
		for path := range s.Unreadable {
			if _, _, _, _, ok := s.Layout.ParseSecretPath(path); ok {
				all[path] = true
			}
		}
	}
	if s.ClusterKnown {
		for key := range s.Observed {
			ns, name, _ := strings.Cut(key, "/")
			all[s.Layout.SecretPath(s.Cluster, ns, name)] = true
		}
	}
	return len(all)
}

// recordRef is a copy of rec for an Action to point at. Taking the
// address of a loop's copy instead would put every record the loop meets
// on the heap, not only the few acted on.
func recordRef(rec committed.Certificate) *committed.Certificate { return &rec }

func hasRecord(m map[string]committed.Certificate, path string) bool {
	_, ok := m[path]
	return ok
}

// movedTo is where a file of the default layout belongs in the current
// one, when a certificate there is still declared for that cluster.
func (s *State) movedTo(path string, wanted map[string]bool) (string, bool) {
	cluster, ns, name, moved, ok := s.Layout.ParseSecretPath(path)
	if !ok || !moved {
		return "", false
	}
	to := s.Layout.SecretPath(cluster, ns, name)
	return to, wanted[to]
}

func (s *State) pruneFileReason(path string) string {
	if cluster := s.clusterOf(path); cluster != "" {
		return "no Certificate delivers it to cluster " + cluster + " any more"
	}
	return "no Certificate declares it any more"
}

// exposed reports whether a committed file holds secret data in the clear:
// no SOPS at all, or a .sops.yaml rule that left data unencrypted.
func exposed(rec *committed.Certificate) bool { return !rec.Encrypted || len(rec.PlaintextData) > 0 }

func exposedKeys(rec *committed.Certificate) string {
	if len(rec.PlaintextData) == 0 {
		return "the whole Secret"
	}
	return strings.Join(rec.PlaintextData, ", ")
}

func sorted(v []string) []string {
	out := slices.Clone(v)
	sort.Strings(out)
	return out
}
