// Package leader makes sure only one certsync replica writes at a time.
//
// It holds a coordination.k8s.io Lease through client-go's leader election:
// while a replica holds it, it runs passes; when it loses it (or cannot renew
// it in time), its context is cancelled before another replica can take
// over, so two replicas never commit or apply at once.
package leader

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config names the Lease and this replica.
type Config struct {
	Namespace, Name string // the Lease; Default name: "certsync"
	Identity        string // this replica (pod name); must be unique
	// LeaseDuration, RenewDeadline, RetryPeriod: Defaults 15s, 10s, 2s,
	// client-go's recommended values.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Logger                                    *slog.Logger
}

// Run blocks until ctx is done, calling lead with a context that lives
// exactly as long as this replica holds the Lease. lead may be called again
// after a lost Lease is won back.
func Run(ctx context.Context, rc *rest.Config, cfg Config, lead func(ctx context.Context)) error {
	if cfg.Name == "" {
		cfg.Name = "certsync"
	}
	if cfg.Identity == "" {
		return fmt.Errorf("leader election: an identity is required (set --leader-elect-id or POD_NAME)")
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(cfg),
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   cfg.LeaseDuration,
			RenewDeadline:   cfg.RenewDeadline,
			RetryPeriod:     cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            cfg.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					log.Info("leading: this replica runs the passes", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
					lead(ctx)
				},
				OnStoppedLeading: func() { log.Info("not leading any more", "identity", cfg.Identity) },
				OnNewLeader: func(id string) {
					if id != cfg.Identity {
						log.Info("another replica leads", "leader", id)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx) // returns when leadership is lost or ctx is done
	}
	return nil
}
