package reconcile

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// applyAndPrune makes the cluster match what is now in Git: the Secrets just
// pushed, the ones the plan found missing, stale or edited, and removals.
// It runs only after the push succeeded, so the cluster never holds a
// Secret that Git does not.
func (r *Reconciler) applyAndPrune(ctx context.Context, p *pass, res *Result, out *outcome) {
	if r.cfg.Cluster == nil {
		return
	}
	apply := func(path string, s *corev1.Secret) {
		if err := r.cfg.Cluster.Apply(ctx, s); err != nil {
			res.Problems = append(res.Problems, fmt.Errorf("apply %s/%s from %s: %w", s.Namespace, s.Name, path, err))
			return
		}
		res.Applied = append(res.Applied, s.Namespace+"/"+s.Name)
	}
	for _, path := range sortedKeys(out.secrets) {
		apply(path, out.secrets[path])
	}
	for _, a := range p.plan().Actions {
		switch a.Kind {
		case Apply:
			s, err := r.decryptSecret(ctx, p, a.Path)
			if err != nil {
				res.Problems = append(res.Problems, fmt.Errorf("apply %s/%s: %w", a.Namespace, a.Name, err))
				continue
			}
			r.log.Info("applying", "secret", a.Namespace+"/"+a.Name, "reason", a.Reason)
			apply(a.Path, s)
		case PruneSecret:
			if err := r.cfg.Cluster.Delete(ctx, a.Namespace, a.Name); err != nil {
				res.Problems = append(res.Problems, fmt.Errorf("prune Secret %s/%s: %w", a.Namespace, a.Name, err))
				continue
			}
			res.Pruned = append(res.Pruned, "Secret "+a.Namespace+"/"+a.Name)
		case PruneFile:
			if _, ok := out.changes[a.Path]; ok && res.Commit != "" {
				res.Pruned = append(res.Pruned, a.Path)
			}
		}
	}
}
