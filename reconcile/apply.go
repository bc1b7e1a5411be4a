package reconcile

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/internal/workpool"
)

// DefaultApplyConcurrency is how many Secrets a pass applies at once when
// Config.ApplyConcurrency is not set.
const DefaultApplyConcurrency = 16

// applyIssued puts the Secrets of a batch that was just pushed into the
// cluster, with an Issued or Renewed event each (within the pass's event
// budget, see events.go). It runs only after the push, so the cluster
// never holds a Secret that Git does not.
func (r *Reconciler) applyIssued(ctx context.Context, res *Result, batch *outcome) {
	if r.cfg.Cluster == nil {
		return
	}
	var jobs []applyJob
	var events []event
	for _, path := range sortedKeys(batch.secrets) {
		if !r.ownPath(path) {
			continue // issued for other clusters only; their appliers apply it
		}
		s := batch.secrets[path]
		jobs = append(jobs, applyJob{path: path, namespace: s.Namespace, name: s.Name, secret: s})
		is, issued := batch.issued[path]
		if !issued {
			continue // a copy of a certificate issued earlier
		}
		reason := "Issued"
		if is.Kind != Issue {
			reason = "Renewed"
		}
		events = append(events, event{namespace: s.Namespace, name: s.Name, eventType: corev1.EventTypeNormal, reason: reason,
			message: fmt.Sprintf("%s: serial %s, expires %s (%s; commit %s)", is.Certificate, is.Serial, is.NotAfter.UTC().Format("2006-01-02T15:04:05Z"), is.Reason, short(res.Commit))})
	}
	r.applyAll(ctx, nil, res, jobs)
	// The certificate is issued and in Git whether or not its apply went
	// through (a failed apply is retried by the next pass): its event is
	// recorded either way, as before applies ran in parallel.
	r.recordEvents(ctx, res, events)
}

// applyPlanned makes the cluster match what is now in Git beyond the new
// certificates: Secrets the plan found missing, stale or edited, and
// removals; and records a Failed event for each failed order.
func (r *Reconciler) applyPlanned(ctx context.Context, p *pass, res *Result, failed []Action) {
	deleted := map[string]bool{}
	for _, path := range res.deleted {
		deleted[path] = true
	}
	for _, a := range p.plan().Actions {
		if a.Kind == PruneFile && deleted[a.Path] {
			res.Pruned = append(res.Pruned, a.Path)
		}
	}
	if r.cfg.Cluster == nil {
		return
	}
	events := make([]event, 0, len(failed))
	for _, a := range failed {
		events = append(events, event{namespace: a.Namespace, name: a.Name, eventType: corev1.EventTypeWarning, reason: "Failed", message: a.Subject() + ": " + a.Reason})
	}
	r.recordEvents(ctx, res, events)
	done := map[string]bool{}
	for _, key := range res.Applied {
		done[key] = true
	}
	var jobs []applyJob
	for _, a := range p.plan().Actions {
		if a.Kind == Apply {
			if key := a.Namespace + "/" + a.Name; !done[key] && !res.restored[key] {
				jobs = append(jobs, committedJob(a))
			}
		}
	}
	r.applyAll(ctx, p, res, jobs)
	for _, a := range p.plan().Actions {
		if a.Kind != PruneSecret {
			continue
		}
		if err := r.cfg.Cluster.Delete(ctx, a.Namespace, a.Name); err != nil {
			res.PruneErrors++
			res.Problems = append(res.Problems, fmt.Errorf("prune Secret %s/%s: %w", a.Namespace, a.Name, err))
			continue
		}
		res.Pruned = append(res.Pruned, "Secret "+a.Namespace+"/"+a.Name)
	}
}

// restoreCommitted applies the Secrets the cluster lacks, or holds stale or
// edited, from Git, before anything is ordered: a rebuilt cluster gets its
// certificates back first, whatever the CA is doing.
func (r *Reconciler) restoreCommitted(ctx context.Context, p *pass, res *Result) {
	if r.cfg.Cluster == nil {
		return
	}
	res.restored = map[string]bool{}
	var jobs []applyJob
	for _, a := range p.plan().Actions {
		if a.Kind == Apply {
			jobs = append(jobs, committedJob(a))
			res.restored[a.Namespace+"/"+a.Name] = true // tried once per pass
		}
	}
	r.applyAll(ctx, p, res, jobs)
}

// applyJob is one Secret to put into the cluster: secret, or when it is
// nil the committed file at path, decrypted by the worker that applies
// it (decryption is most of the CPU an apply costs certsync).
type applyJob struct {
	path, namespace, name string
	secret                *corev1.Secret
	reason                string // why the plan applies a committed file
}

func committedJob(a Action) applyJob {
	return applyJob{path: a.Path, namespace: a.Namespace, name: a.Name, reason: a.Reason}
}

func (j applyJob) key() string { return j.namespace + "/" + j.name }

// applyAll applies jobs, ApplyConcurrency at a time, then records the
// outcomes in res in the order of jobs: Applied, ApplyErrors and Problems
// read the same whichever request finished first. Each failed Secret is
// its own problem. When ctx ends, the Secrets not yet tried count as
// apply errors, in one problem naming how many and the first of them.
func (r *Reconciler) applyAll(ctx context.Context, p *pass, res *Result, jobs []applyJob) {
	if len(jobs) == 0 {
		return
	}
	errs := make([]error, len(jobs))
	started, stopped := workpool.Run(ctx, len(jobs), r.cfg.ApplyConcurrency, func(ctx context.Context, i int) {
		errs[i] = r.applyOne(ctx, p, jobs[i])
	})
	for i := range started {
		if errs[i] != nil {
			res.ApplyErrors++
			res.Problems = append(res.Problems, errs[i])
			continue
		}
		res.Applied = append(res.Applied, jobs[i].key())
	}
	if stopped != nil {
		left := len(jobs) - started
		res.ApplyErrors += left
		res.Problems = append(res.Problems, fmt.Errorf("apply: stopped with %d of %d Secrets not tried (from %s): %w", left, len(jobs), jobs[started].key(), stopped))
	}
}

// applyOne decrypts (for a committed file) and applies one Secret. It runs
// on a worker of applyAll: it touches nothing shared but the Cluster, the
// pass's read-only tree and its Encrypter, all safe for concurrent use.
func (r *Reconciler) applyOne(ctx context.Context, p *pass, j applyJob) error {
	s := j.secret
	if s == nil {
		var err error
		if s, err = r.decryptSecret(ctx, p, j.path); err != nil {
			return fmt.Errorf("apply %s: %w", j.key(), err)
		}
		r.log.Info("applying", "secret", j.key(), "reason", j.reason)
	}
	if err := r.cfg.Cluster.Apply(ctx, s); err != nil {
		return fmt.Errorf("apply %s/%s from %s: %w", s.Namespace, s.Name, j.path, err)
	}
	return nil
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
