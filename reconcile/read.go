package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/settings"
)

// SOPSConfigPath is where the repository keeps its SOPS creation rules.
const SOPSConfigPath = ".sops.yaml"

// pass is what one pass read: the tree it planned on, the declarations,
// the state handed to Calculate, and the Encrypter built for that tree.
type pass struct {
	tree     Tree
	set      declared.Set
	state    State
	enc      Encrypter
	problems []error
	// lastPlan is the plan calculated on tree.
	lastPlan Plan
	// claims are the order claim files of the tree, by file path.
	claims map[string]committed.Claim
	// requests are the manual renewal requests by Certificate key.
	requests map[string]committed.RenewRequest
	// verified tells, by path, which committed files were decrypted and
	// checked against their metadata (false: not checked yet, or no key
	// to check with); see verify.go.
	verified map[string]bool
	// gen is what parse read (the committed files' records and states by
	// path, see generation) and recordPaths the committed files' paths,
	// sorted, for the verification steps; decrypted counts the files
	// those steps decrypted.
	gen         *generation
	recordPaths []string
	decrypted   int
}

// fingerprint digests what an order is made from: the Certificate's spec
// and its issuer's whole declaration (not where they were read from), so
// an edit to either releases a certificate held back by a failure.
func fingerprint(specHash, issuerDigest string) string {
	h := sha256.Sum256([]byte(specHash + "\x00" + issuerDigest))
	return hex.EncodeToString(h[:8])
}

func issuerDigest(iss *declared.Issuer) string {
	if iss == nil {
		return ""
	}
	cp := *iss
	cp.Source = declared.Source{}
	b, _ := json.Marshal(cp) // maps are sorted; pointers are followed, not printed
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func (p *pass) plan() Plan { return p.lastPlan }

// has reports whether the pass's tree holds path.
func (p *pass) has(path string) bool {
	_, err := p.tree.ReadFile(path)
	return err == nil
}

// readState reads declarations and committed records from the tree. Only
// plaintext is read: planning never needs a decryption key.
func (r *Reconciler) readState(ctx context.Context, tree Tree, observed []ObservedSecret) (*pass, error) {
	return r.readStateAwaiting(ctx, tree, func() ([]ObservedSecret, error) { return observed, nil })
}

// readStateAwaiting is readState while the cluster is still being listed:
// it reads and parses the tree first and waits for the cluster's Secrets
// (observed) only when it needs them, at the end.
func (r *Reconciler) readStateAwaiting(ctx context.Context, tree Tree, observed func() ([]ObservedSecret, error)) (*pass, error) {
	if p, ok := r.reuseIdle(tree); ok {
		secrets, err := observed()
		if err != nil {
			return nil, err
		}
		p.state.Observed = observedState(secrets)
		return p, nil
	}
	sopsConfig, err := tree.ReadFile(SOPSConfigPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", SOPSConfigPath, err)
	}
	enc, err := r.cfg.Encryption(sopsConfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", SOPSConfigPath, err)
	}
	p := &pass{tree: tree, enc: enc, requests: map[string]committed.RenewRequest{}, claims: map[string]committed.Claim{}}
	p.state = State{
		Now:             r.cfg.Clock(),
		Cluster:         r.cfg.ClusterName,
		Unreadable:      map[string]error{},
		Corrupt:         map[string]error{},
		Accounts:        map[string][]string{},
		AccountsExposed: map[string][]string{},
		ClusterKnown:    r.cfg.Cluster != nil,
		Failures:        r.failureSnapshot(),
		Policy:          r.cfg.Policy,
		Agent:           r.cfg.Agent,
		Claims:          map[string]committed.Claim{},
	}
	p.state.ApplyOnly = r.cfg.Role == RoleApplier
	// certsync.yaml says where Secrets are committed; when it cannot be
	// read, deliver reports it and nothing is planned from this pass.
	settingsFile, err := tree.ReadFile(settings.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", settings.Path, err)
	}
	conf, confErr := settings.Parse(settingsFile)
	p.state.Layout = conf.Layout // the default when certsync.yaml is wrong
	layout := p.state.Layout
	r.layout = layout
	var recordPaths, declPaths []string
	for _, path := range tree.Paths() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case r.recordPath(layout, p.state.ApplyOnly, path):
			recordPaths = append(recordPaths, path)
		case strings.HasPrefix(path, committed.AccountsDir):
			content, err := tree.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			recipients, err := committed.Recipients(path, content)
			if err != nil {
				p.problems = append(p.problems, err)
				continue
			}
			p.state.Accounts[path] = recipients
			if keys, err := committed.Exposed(path, content); err == nil && len(keys) > 0 {
				p.state.AccountsExposed[path] = keys
			}
		case strings.HasPrefix(path, committed.RequestsDir):
			content, err := tree.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			req, err := committed.ReadRenewRequest(path, content)
			if err != nil {
				p.problems = append(p.problems, err)
				continue
			}
			p.requests[req.Certificate] = req
		case strings.HasPrefix(path, committed.ClaimsDir):
			content, err := tree.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			cl, err := committed.ReadClaim(path, content)
			if err != nil {
				// A claim nobody can read holds nothing; the next claim
				// an agent writes removes it.
				r.log.Warn("ignoring an unreadable order claim", "error", err)
				cl = committed.Claim{Path: path}
			}
			p.claims[path] = cl
			for _, cert := range cl.Certificates {
				if held, ok := p.state.Claims[cert]; !ok || cl.Expires.After(held.Expires) {
					p.state.Claims[cert] = cl
				}
			}
		case path == settings.Path:
		case declared.IsManifestPath(path, nil) && !layout.IsOutput(path):
			declPaths = append(declPaths, path)
		}
	}
	cache := r.cache.next(tree)
	if cache.prev == nil {
		cache.stored = r.storedRecords(ctx, layout)
	}
	parts, fresh, err := cache.parse(ctx, layout, recordPaths, declPaths)
	if err != nil {
		return nil, err
	}
	r.cache.store(cache)
	r.saveRecords(ctx, cache, layout, fresh)
	p.gen, p.recordPaths = cache, recordPaths
	p.verified = make(map[string]bool, len(recordPaths))
	for _, path := range recordPaths {
		p.verified[path] = cache.files[path].verified
	}
	r.verifyRecords(ctx, p, fresh)
	p.state.Committed = cache.committed // shared with the cache: read only
	for _, path := range recordPaths {
		st := cache.files[path]
		if st.err != nil {
			p.state.Unreadable[path] = st.err
			p.problems = append(p.problems, st.err)
			continue
		}
		if st.corrupt != nil {
			p.state.Corrupt[path] = st.corrupt
			r.log.Warn("committed file failed verification; it will be repaired", "path", path, "error", st.corrupt)
		}
	}
	p.set = declared.Combine(parts)
	cache.shareCertificates(declPaths, parts, p.set.Certificates)
	p.state.RenewRequests = map[string]time.Time{}
	for key, req := range p.requests {
		p.state.RenewRequests[key] = req.RequestedAt
	}
	// One key string per certificate for the maps keyed by it.
	keys := make([]string, len(p.set.Certificates))
	for i := range p.set.Certificates {
		keys[i] = p.set.Certificates[i].Key()
	}
	p.state.Certificates = r.deliver(p, conf, confErr, keys)
	p.state.KeystorePasswords = keystorePasswordHashes(tree, &p.set, p.state.Certificates)
	p.state.Fingerprints = make(map[string]string, len(p.set.Certificates))
	issuerDigests := map[*declared.Issuer]string{}
	for i := range p.set.Certificates {
		c := &p.set.Certificates[i]
		iss := p.set.IssuerFor(c)
		d, ok := issuerDigests[iss]
		if !ok {
			d = issuerDigest(iss)
			issuerDigests[iss] = d
		}
		p.state.Fingerprints[keys[i]] = fingerprint(c.SpecHash(), d)
	}
	if lister, ok := enc.(RecipientLister); ok {
		p.state.DesiredRecipients = make(map[string][]string, len(p.state.Committed)+len(p.state.Accounts))
		paths := make([]string, 0, len(p.state.Committed)+len(p.state.Accounts))
		for path := range p.state.Committed {
			paths = append(paths, path)
		}
		for path := range p.state.Accounts {
			paths = append(paths, path)
		}
		var last []string
		for _, path := range paths {
			want, err := lister.Recipients(path)
			if err != nil {
				p.problems = append(p.problems, fmt.Errorf("%s: recipients from %s: %w", path, SOPSConfigPath, err))
				continue
			}
			// Most files want the same recipients: one slice serves
			// them (the planner only reads it).
			if slices.Equal(want, last) {
				want = last
			} else {
				last = want
			}
			p.state.DesiredRecipients[path] = want
		}
	}
	r.readSigning(p)
	for _, prob := range p.set.Problems {
		p.state.PruneBlockers = append(p.state.PruneBlockers, prob.Error())
	}
	for _, prob := range p.problems {
		p.state.PruneBlockers = append(p.state.PruneBlockers, prob.Error())
	}
	secrets, err := observed()
	if err != nil {
		return nil, err
	}
	p.state.Observed = observedState(secrets)
	return p, nil
}

// reuseIdle returns the state read by the previous pass when that pass
// found nothing to do and the head has not moved since: what readState
// derives from the tree (declarations, records, delivery, fingerprints,
// recipients) is a function of the tree, so an idle agent re-derives
// nothing but what moves without a commit: the time, the backoff state
// and the cluster. Files still waiting for verification keep every pass
// reading, so the budget goes on through them.
func (r *Reconciler) reuseIdle(tree Tree) (*pass, bool) {
	last := r.idle
	r.idle = nil // set again by Reconcile if this pass is idle too
	if last == nil || tree.Commit() == "" || tree.Commit() != last.tree.Commit() || r.verify.waiting > 0 {
		return nil, false
	}
	p := *last
	p.tree, p.lastPlan, p.decrypted = tree, Plan{}, 0
	// The parse cache reads the same commit through the new snapshot, so
	// the old one (its index of every path) is not kept beside it.
	p.gen.tree = tree
	p.gen.hasher, _ = tree.(BlobHasher)
	p.state.Now = r.cfg.Clock()
	p.state.Failures = r.failureSnapshot()
	p.state.Windows = nil
	r.layout = p.state.Layout
	return &p, true
}

// keepIdle keeps an idle pass for reuseIdle, without what the next pass
// observes anew (the cluster's Secrets, one entry each).
func (r *Reconciler) keepIdle(p *pass) {
	p.state.Observed = nil
	r.idle = p
}

// observedState is what the planner needs of the cluster's Secrets.
func observedState(observed []ObservedSecret) map[string]Observed {
	out := make(map[string]Observed, len(observed))
	for _, o := range observed {
		out[o.Namespace+"/"+o.Name] = Observed{
			Serial:      o.Annotations[committed.AnnotationSerial],
			Drifted:     o.Drifted,
			Rendered:    renderedAnnotations(o.Annotations),
			Certificate: o.Annotations[committed.AnnotationCertificate],
			Source:      o.Annotations[committed.AnnotationSource],
		}
	}
	return out
}

// deliver applies certsync.yaml's policy and resolves which clusters
// receive each certificate (certsync.yaml and the certsync.io annotations)
// into the pass's state, and returns the certificates that can be planned
// (keys are the set's certificates' keys, in order). A certificate whose
// delivery is wrong is a problem of its own and is left out, like an
// invalid declaration; when certsync.yaml itself is wrong, every
// certificate is left out: guessing where keys go is worse than waiting
// for a fix.
func (r *Reconciler) deliver(p *pass, conf settings.Settings, confErr error, keys []string) []declared.Certificate {
	if confErr != nil {
		p.problems = append(p.problems, fmt.Errorf("%w; no certificate is issued, copied or applied until it is fixed", confErr))
		return nil
	}
	if !conf.Has(r.cfg.ClusterName) && r.cfg.Cluster != nil {
		p.problems = append(p.problems, fmt.Errorf("this agent's cluster %q (--cluster) is not declared in %s (declared: %s): nothing is delivered to it, and nothing is pruned there",
			r.cfg.ClusterName, settings.Path, strings.Join(conf.Names(), ", ")))
	}
	all := p.set.Certificates
	p.state.Targets = make(map[string][]string, len(all))
	// When every certificate can be planned (the usual case) the set's own
	// slice is returned: a copy of 10,000 Certificates is ~7 MB. out is
	// made once one is left out.
	var out []declared.Certificate
	var last []string
	for i := range all {
		c := &all[i]
		err := conf.Allow(c) // nothing is ordered for it
		var targets []string
		if err == nil {
			targets, err = conf.Targets(c, r.cfg.ClusterName)
		}
		if err != nil {
			p.problems = append(p.problems, err)
			if out == nil {
				out = make([]declared.Certificate, i, len(all)-1)
				copy(out, all[:i])
			}
			continue
		}
		// Most certificates go to the same clusters: one slice serves
		// them (the planner only reads it).
		if slices.Equal(targets, last) {
			targets = last
		} else {
			last = targets
		}
		p.state.Targets[keys[i]] = targets
		if out != nil {
			out = append(out, *c)
		}
	}
	if out == nil {
		return all
	}
	return out
}

// recordPath reports whether path is a committed Secret this agent reads:
// an issuer reads every cluster's, since one order serves them all; an
// applier only its own cluster's. Files under secrets/ that are not in the
// layout are read too, so that they are reported, not taken for
// declarations.
func (r *Reconciler) recordPath(layout committed.Layout, applyOnly bool, path string) bool {
	cluster, _, _, _, ok := layout.ParseSecretPath(path)
	if applyOnly {
		return (ok && cluster == r.cfg.ClusterName) || strings.HasPrefix(path, layout.ClusterPrefix(r.cfg.ClusterName))
	}
	return ok || strings.HasPrefix(path, committed.SecretsDir)
}
