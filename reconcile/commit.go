package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
)

// commitAndPush commits the outcome in one commit and pushes it. When
// another writer pushed first, it fetches, plans again on the new head and
// commits what is still due, reusing certificates it already ordered: a
// lost race never orders twice, and a certificate the other writer already
// renewed is dropped. It returns the pass and outcome that were pushed.
func (r *Reconciler) commitAndPush(ctx context.Context, p *pass, res *Result, out *outcome) (*pass, *outcome, error) {
	for attempt := 1; ; attempt++ {
		changes := sortedChanges(out.changes)
		if len(changes) == 0 {
			return p, out, nil
		}
		msg := commitMessage(p.plan(), out)
		tree, err := r.cfg.Repo.Commit(ctx, p.tree, changes, msg)
		if err != nil {
			return p, out, fmt.Errorf("commit %d files: %w", len(changes), err)
		}
		err = r.cfg.Repo.Push(ctx)
		if err == nil {
			res.Commit = tree.Commit()
			for _, path := range sortedKeys(out.issued) {
				res.Issued = append(res.Issued, out.issued[path])
			}
			res.Records = recordsAfter(res.Records, changes)
			r.log.Info("pushed", "commit", res.Commit, "files", len(changes), "attempt", attempt)
			return p, out, nil
		}
		if !errors.Is(err, ErrPushRace) {
			// The commit stays local; the next pass pushes it first.
			return p, out, fmt.Errorf("push: %w (the commit is kept locally and pushed by the next pass)", err)
		}
		if attempt >= r.cfg.PushAttempts {
			return p, out, fmt.Errorf("push: lost the race %d times; giving up this pass: %w", attempt, err)
		}
		r.log.Info("push lost a race; planning again on the new head", "attempt", attempt)
		if p, out, err = r.replan(ctx, out); err != nil {
			return p, out, err
		}
		res.Head, res.Plan = p.tree.Commit(), p.plan()
	}
}

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
	p.lastPlan = Calculate(p.state)
	out := &outcome{changes: map[string]FileChange{}, secrets: map[string]*corev1.Secret{}, issued: map[string]Issued{}, problems: prev.problems, failed: prev.failed}
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
			out.secrets[a.Path], out.issued[a.Path] = s, prev.issued[a.Path]
			if req, ok := p.requests[a.Certificate.Key()]; ok {
				out.changes[req.Path] = FileChange{Path: req.Path, Delete: true}
			}
		case a.Kind == Reencrypt:
			if err := r.reencrypt(ctx, p, a, out); err != nil {
				out.problems = append(out.problems, err)
			}
		case a.Kind == PruneFile:
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
	var ordered, reencrypted, pruned, accounts []string
	var trailers []string
	for _, path := range sortedKeys(out.issued) {
		is := out.issued[path]
		ordered = append(ordered, fmt.Sprintf("- %s → %s: %s (serial %s, expires %s)", is.Certificate, path, is.Reason, is.Serial, committed.FormatTime(is.NotAfter)))
		trailers = append(trailers,
			"Certificate: "+is.Certificate,
			"Serial: "+is.Serial,
			"Not-After: "+committed.FormatTime(is.NotAfter),
			"Reason: "+is.Reason)
	}
	for _, a := range plan.Actions {
		if ch, ok := out.changes[a.Path]; ok {
			switch {
			case a.Kind == Reencrypt:
				reencrypted = append(reencrypted, fmt.Sprintf("- %s: %s", a.Path, a.Reason))
			case a.Kind == PruneFile && ch.Delete:
				pruned = append(pruned, fmt.Sprintf("- %s: %s", a.Path, a.Reason))
			}
		}
	}
	for _, path := range sortedKeys(out.changes) {
		if strings.HasPrefix(path, committed.AccountsDir) && !isReencrypt(plan, path) {
			accounts = append(accounts, "- "+path+": new ACME account key")
		}
	}
	var subject []string
	if n := len(ordered); n > 0 {
		subject = append(subject, fmt.Sprintf("issue %d %s", n, plural(n, "certificate")))
	}
	if n := len(reencrypted); n > 0 {
		subject = append(subject, fmt.Sprintf("re-encrypt %d", n))
	}
	if n := len(pruned); n > 0 {
		subject = append(subject, fmt.Sprintf("prune %d", n))
	}
	if len(subject) == 0 {
		subject = append(subject, "add ACME account key")
	}
	var b strings.Builder
	b.WriteString("certsync: " + strings.Join(subject, ", ") + "\n")
	for _, section := range [][]string{ordered, reencrypted, pruned, accounts} {
		if len(section) > 0 {
			b.WriteString("\n" + strings.Join(section, "\n") + "\n")
		}
	}
	if len(trailers) > 0 {
		b.WriteString("\n" + strings.Join(trailers, "\n") + "\n")
	}
	return b.String()
}

// recordsAfter is the committed state once changes are in: what status
// tables and metrics show after a pass.
func recordsAfter(before map[string]committed.Certificate, changes []FileChange) map[string]committed.Certificate {
	after := make(map[string]committed.Certificate, len(before))
	for k, v := range before {
		after[k] = v
	}
	for _, ch := range changes {
		if ch.Delete {
			delete(after, ch.Path)
			continue
		}
		if rec, err := committed.Read(ch.Path, ch.Content); err == nil {
			after[ch.Path] = rec
		}
	}
	return after
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
