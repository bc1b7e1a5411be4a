package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/certsync/certsync/committed"
)

// replan reads the new remote head and keeps from prev what is still wanted.
func (r *Reconciler) replan(ctx context.Context, prev *outcome) (*pass, *outcome, error) {
	tree, err := r.cfg.Repo.Fetch(ctx)
	if err != nil {
		return nil, prev, fmt.Errorf("fetch repository after a lost push race: %w", err)
	}
	if err := r.cfg.Repo.Reset(ctx, tree); err != nil {
		return nil, prev, fmt.Errorf("reset to the remote head: %w", err)
	}
	observed, err := r.observe(ctx)
	if err != nil {
		return nil, prev, err
	}
	p, err := r.readState(ctx, tree, observed)
	if err != nil {
		return nil, prev, err
	}
	p.lastPlan = r.calculate(ctx, p, true)
	out := newOutcome()
	var secrets *passSecrets
	for _, a := range p.lastPlan.Actions {
		switch {
		case a.Kind.Orders():
			s, ok := prev.secrets[a.Path]
			if !ok {
				continue // newly due since we started: the next pass orders it
			}
			content, err := r.encryptSecret(ctx, p, a.Path, s)
			if err != nil {
				return p, out, err
			}
			out.add(a.Path, content)
			for _, path := range a.Copies {
				copied, err := r.encryptSecret(ctx, p, path, s)
				if err != nil {
					return p, out, err
				}
				out.add(path, copied)
			}
			is := prev.issued[a.Path]
			is.Copies = a.Copies
			out.secrets[a.Path], out.issued[a.Path] = s, is
			if req, ok := p.requests[a.Certificate.Key()]; ok {
				out.changes[req.Path] = FileChange{Path: req.Path, Delete: true}
			}
		case a.Kind == Reencrypt:
			if _, done := prev.changes[a.Path]; !done {
				continue // not part of this batch: a later pass does it
			}
			content, err := r.reencrypt(ctx, p, a)
			if err != nil {
				return p, out, err
			}
			out.add(a.Path, content)
		case a.Kind == Rerender:
			if _, done := prev.changes[a.Path]; !done {
				continue // not part of this batch, or another writer did it
			}
			if secrets == nil {
				secrets = r.passSecrets(p)
			}
			secret, changes, err := r.rerender(ctx, p, secrets, a)
			if err != nil {
				return p, out, err
			}
			for _, ch := range changes {
				out.add(ch.Path, ch.Content)
			}
			if r.ownPath(a.Path) {
				out.secrets[a.Path] = secret
			}
		case a.Kind == Copy:
			if _, done := prev.changes[a.Path]; !done {
				continue
			}
			secret, content, err := r.copySecret(ctx, p, a)
			if err != nil {
				return p, out, err
			}
			out.add(a.Path, content)
			if r.ownPath(a.Path) {
				out.secrets[a.Path] = secret
			}
		case a.Kind == PruneFile:
			if _, done := prev.changes[a.Path]; !done {
				continue
			}
			out.changes[a.Path] = FileChange{Path: a.Path, Delete: true}
		}
	}
	for path, ch := range prev.changes {
		if strings.HasPrefix(path, committed.AccountsDir) {
			if _, err := tree.ReadFile(path); err != nil { // still absent: keep ours
				out.changes[path] = ch
			}
		}
	}
	return p, out, nil
}

// commitMessage lists each certificate in the body and ends with trailers
// (Certificate, Serial, Not-After, Reason) that tools can parse with
// `git interpret-trailers`.
func commitMessage(plan Plan, out *outcome) string {
	var ordered, rerendered, copied, reencrypted, pruned, accounts, claims []string
	var trailers []string
	for _, path := range sortedKeys(out.issued) {
		is := out.issued[path]
		to := strings.Join(append([]string{path}, is.Copies...), ", ")
		ordered = append(ordered, fmt.Sprintf("- %s → %s: %s (serial %s, expires %s)", is.Certificate, to, is.Reason, is.Serial, committed.FormatTime(is.NotAfter)))
		trailers = append(trailers,
			"Certificate: "+is.Certificate,
			"Serial: "+is.Serial,
			"Not-After: "+committed.FormatTime(is.NotAfter),
			"Reason: "+is.Reason)
	}
	for _, a := range plan.Actions {
		if ch, ok := out.changes[a.Path]; ok {
			switch {
			case a.Kind == Rerender && !ch.Delete:
				// The certificate is the one committed: its serial and
				// expiry in the trailers, with why it was rendered again.
				to := strings.Join(append([]string{a.Path}, a.Copies...), ", ")
				serial, notAfter := "", ""
				if a.Committed != nil {
					serial, notAfter = a.Committed.Serial, committed.FormatTime(a.Committed.NotAfter)
				}
				rerendered = append(rerendered, fmt.Sprintf("- %s → %s: %s (serial %s, no order)", a.Subject(), to, a.Reason, serial))
				trailers = append(trailers,
					"Certificate: "+a.Subject(),
					"Serial: "+serial,
					"Not-After: "+notAfter,
					"Reason: re-rendered: "+a.Reason)
			case a.Kind == Reencrypt:
				reencrypted = append(reencrypted, fmt.Sprintf("- %s: %s", a.Path, a.Reason))
			case a.Kind == Copy:
				copied = append(copied, fmt.Sprintf("- %s → %s: %s", a.Subject(), a.Path, a.Reason))
			case a.Kind == PruneFile && ch.Delete:
				pruned = append(pruned, fmt.Sprintf("- %s: %s", a.Path, a.Reason))
			}
		}
	}
	for _, path := range sortedKeys(out.changes) {
		switch ch := out.changes[path]; {
		case strings.HasPrefix(path, committed.AccountsDir) && !isReencrypt(plan, path):
			accounts = append(accounts, "- "+path+": new ACME account key")
		case strings.HasPrefix(path, committed.ClaimsDir) && ch.Delete:
			claims = append(claims, "- "+path+": order claim released")
		case strings.HasPrefix(path, committed.ClaimsDir):
			if cl, err := committed.ReadClaim(path, ch.Content); err == nil {
				claims = append(claims, fmt.Sprintf("- %s: agent %s orders %d %s (claim until %s)", path, cl.Agent, len(cl.Certificates), plural(len(cl.Certificates), "certificate"), committed.FormatTime(cl.Expires)))
			}
		}
	}
	var subject []string
	if n := len(ordered); n > 0 {
		subject = append(subject, fmt.Sprintf("issue %d %s", n, plural(n, "certificate")))
	}
	if n := len(rerendered); n > 0 {
		subject = append(subject, fmt.Sprintf("re-render %d %s", n, plural(n, "certificate")))
	}
	if n := len(copied); n > 0 {
		subject = append(subject, fmt.Sprintf("copy %d %s", n, plural(n, "certificate")))
	}
	if n := len(reencrypted); n > 0 {
		subject = append(subject, fmt.Sprintf("re-encrypt %d", n))
	}
	if n := len(pruned); n > 0 {
		subject = append(subject, fmt.Sprintf("prune %d", n))
	}
	switch {
	case len(subject) > 0:
	case len(accounts) > 0:
		subject = append(subject, "add ACME account key")
	case len(claims) > 0 && strings.HasSuffix(claims[0], "released"):
		subject = append(subject, "release order claim")
	case len(claims) > 0:
		subject = append(subject, "claim certificates for ordering")
	default:
		subject = append(subject, "update")
	}
	var b strings.Builder
	b.WriteString("certsync: " + strings.Join(subject, ", ") + "\n")
	for _, section := range [][]string{ordered, rerendered, copied, reencrypted, pruned, accounts, claims} {
		if len(section) > 0 {
			b.WriteString("\n" + strings.Join(section, "\n") + "\n")
		}
	}
	if len(trailers) > 0 {
		b.WriteString("\n" + strings.Join(trailers, "\n") + "\n")
	}
	return b.String()
}

// applyRecords brings records, the committed state by path, up to date
// with changes: what status tables and metrics show after a pass.
func applyRecords(layout committed.Layout, records map[string]committed.Certificate, changes []FileChange) {
	for _, ch := range changes {
		if ch.Delete {
			delete(records, ch.Path)
			continue
		}
		if rec, err := layout.Read(ch.Path, ch.Content); err == nil {
			records[ch.Path] = rec
		}
	}
}

func isReencrypt(plan Plan, path string) bool {
	for _, a := range plan.Actions {
		if a.Kind == Reencrypt && a.Path == path {
			return true
		}
	}
	return false
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func sortedChanges(m map[string]FileChange) []FileChange {
	out := make([]FileChange, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
