package reconcile

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// applyIssued puts the Secrets of a batch that was just pushed into the
// cluster, with an Issued or Renewed event each. It runs only after the
// push, so the cluster never holds a Secret that Git does not.
func (r *Reconciler) applyIssued(ctx context.Context, res *Result, batch *outcome) {
	if r.cfg.Cluster == nil {
		return
	}
	for _, path := range sortedKeys(batch.secrets) {
		if !r.ownPath(path) {
			continue // issued for other clusters only; their appliers apply it
		}
		s := batch.secrets[path]
		r.apply(ctx, res, path, s)
		is, issued := batch.issued[path]
		if !issued {
			continue // a copy of a certificate issued earlier
		}
		reason := "Issued"
		if is.Kind != Issue {
			reason = "Renewed"
		}
		r.event(ctx, s.Namespace, s.Name, corev1.EventTypeNormal, reason,
			fmt.Sprintf("%s: serial %s, expires %s (%s; commit %s)", is.Certificate, is.Serial, is.NotAfter.UTC().Format("2006-01-02T15:04:05Z"), is.Reason, short(res.Commit)))
	}
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
	for _, a := range failed {
		r.event(ctx, a.Namespace, a.Name, corev1.EventTypeWarning, "Failed", a.Subject()+": "+a.Reason)
	}
	done := map[string]bool{}
	for _, key := range res.Applied {
		done[key] = true
	}
	for _, a := range p.plan().Actions {
		switch a.Kind {
		case Apply:
			if key := a.Namespace + "/" + a.Name; !done[key] && !res.restored[key] {
				r.applyCommitted(ctx, p, res, a)
			}
		case PruneSecret:
			if err := r.cfg.Cluster.Delete(ctx, a.Namespace, a.Name); err != nil {
				res.PruneErrors++
				res.Problems = append(res.Problems, fmt.Errorf("prune Secret %s/%s: %w", a.Namespace, a.Name, err))
				continue
			}
			res.Pruned = append(res.Pruned, "Secret "+a.Namespace+"/"+a.Name)
		}
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
	for _, a := range p.plan().Actions {
		if a.Kind == Apply {
			r.applyCommitted(ctx, p, res, a)
			res.restored[a.Namespace+"/"+a.Name] = true // tried once per pass
		}
	}
}

func (r *Reconciler) applyCommitted(ctx context.Context, p *pass, res *Result, a Action) {
	s, err := r.decryptSecret(ctx, p, a.Path)
	if err != nil {
		res.ApplyErrors++
		res.Problems = append(res.Problems, fmt.Errorf("apply %s/%s: %w", a.Namespace, a.Name, err))
		return
	}
	r.log.Info("applying", "secret", a.Namespace+"/"+a.Name, "reason", a.Reason)
	r.apply(ctx, res, a.Path, s)
}

func (r *Reconciler) apply(ctx context.Context, res *Result, path string, s *corev1.Secret) {
	if err := r.cfg.Cluster.Apply(ctx, s); err != nil {
		res.ApplyErrors++
		res.Problems = append(res.Problems, fmt.Errorf("apply %s/%s from %s: %w", s.Namespace, s.Name, path, err))
		return
	}
	res.Applied = append(res.Applied, s.Namespace+"/"+s.Name)
}

// event records a Kubernetes Event when the cluster can; a failure to
// record one is logged, never fatal.
func (r *Reconciler) event(ctx context.Context, namespace, name, eventType, reason, message string) {
	rec, ok := r.cfg.Cluster.(EventRecorder)
	if !ok {
		return
	}
	if err := rec.Event(ctx, namespace, name, eventType, reason, message); err != nil {
		r.log.Warn("event not recorded", "secret", namespace+"/"+name, "reason", reason, "error", err)
	}
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
