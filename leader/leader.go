// Package leader makes sure only one certsync replica writes at a time.
//
// It holds a coordination.k8s.io Lease through client-go's leader election.
// While this replica holds it, [Run] calls lead with a context that ends the
// moment the Lease is lost, or could be lost: lead stops writing (ordering,
// committing, applying) when that context ends.
//
// # Why two replicas never write at once
//
// Another replica takes the Lease only after it has seen the Lease record
// unchanged for LeaseDuration, timed on its own clock from the moment it
// read the last renewal. That renewal was written after this replica sent
// it, so, with s the moment the last successful renewal was sent:
//
//	another replica may take the Lease at   s + LeaseDuration               (15 s)
//	lead's context ends at the latest at    s + RetryPeriod + RenewDeadline (12 s)
//	time lead has to stop writing           LeaseDuration − RenewDeadline − RetryPeriod (3 s)
//
// The 12 s is client-go's: after a successful renewal it waits RetryPeriod,
// then retries for up to RenewDeadline before it gives up leading. client-go
// counts from when the renewal's answer arrived, though; a renewal written at
// once but answered late would push its give-up past s + LeaseDuration. So
// Run also keeps its own deadline, counted from when the renewal was sent,
// and ends lead's context when no renewal has succeeded for RetryPeriod +
// RenewDeadline, whichever comes first.
//
// Clock skew between replicas does not matter: each measures durations on
// its own monotonic clock from what it observed. Only clocks running at
// different rates would, and 3 s out of 15 s leaves room for far worse than
// real clocks drift. The defaults are client-go's recommended 15 s, 10 s and
// 2 s; Run refuses settings that leave lead no time to stop.
//
// The work in flight must stop within those 3 s once its context ends:
// certsync's reconciler starts no new step, and a step's requests to Git
// and the API server are cancelled with the context. An ACME order already
// sent to the CA cannot be called back (lego takes no context); it may
// complete, but this replica no longer pushes or applies its result.
//
// # Shutdown
//
// When Run's context ends (SIGTERM) while lead runs, the Lease stays held and
// renewed until lead returns: the caller decides how long the work in flight
// may finish (certsync's --shutdown-grace). Then Run releases the Lease, so
// another replica takes over at once instead of after LeaseDuration.
//
// Run releases the Lease itself rather than through client-go's
// ReleaseOnCancel, which releases it before it cancels the leader's context:
// another replica could then take over while this one is still stopping.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Config names the Lease and this replica.
type Config struct {
	// Namespace and Name locate the Lease. Default name: "certsync".
	Namespace, Name string
	// Identity names this replica in the Lease (the Pod name); it must be
	// unique among the replicas.
	Identity string
	// LeaseDuration is how long the other replicas wait, after they last
	// saw the Lease renewed, before they take it. Default: 15s.
	LeaseDuration time.Duration
	// RenewDeadline is how long the holder retries a renewal before it
	// stops leading. Default: 10s.
	RenewDeadline time.Duration
	// RetryPeriod is the pause between attempts to take or renew the
	// Lease. Default: 2s.
	//
	// LeaseDuration must exceed RenewDeadline + RetryPeriod: the
	// difference is the time lead has to stop (see the package doc).
	RetryPeriod time.Duration
	// OnNewLeader, when set, is called with the identity of each replica
	// seen taking the Lease, this one included.
	OnNewLeader func(identity string)
	// Logger receives the changes of leadership. Default: discard.
	Logger *slog.Logger
}

// errRenewalOverdue ends lead's context when no renewal has succeeded for
// RetryPeriod + RenewDeadline, should client-go not have noticed yet.
var errRenewalOverdue = errors.New("the Lease was not renewed in time; stopping before another replica may take it")

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Name == "" {
		cfg.Name = "certsync"
	}
	if cfg.Identity == "" {
		return cfg, errors.New("an identity is required (set --leader-elect-id or POD_NAME)")
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = 10 * time.Second
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	if cfg.LeaseDuration <= cfg.RenewDeadline+cfg.RetryPeriod {
		return cfg, fmt.Errorf("the lease duration (%s) must exceed the renew deadline (%s) plus the retry period (%s), or a replica that lost the Lease could still be writing when another takes it",
			cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Run campaigns for the Lease until ctx is done. Each time this replica
// wins it, lead runs with a context that ends as soon as the Lease is lost
// (or could be); lead is called again if the Lease is won back.
//
// lead must return soon after its context ends, and once ctx is done it
// should finish what it is doing and return: until it does, Run keeps the
// Lease renewed, and it releases the Lease only after lead has returned. Run
// returns once ctx is done and lead has returned.
func Run(ctx context.Context, rc *rest.Config, cfg Config, lead func(ctx context.Context)) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("leader election: client for the Lease: %w", err)
	}
	lock := &renewals{Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(cfg),
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}}
	for ctx.Err() == nil {
		if err := campaign(ctx, lock, cfg, lead); err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		// Do not spin on a lead that returns at once.
		sleep(ctx, cfg.RetryPeriod)
	}
	return nil
}

// campaign waits for the Lease, leads while it holds it, and returns when
// leadership ended: the Lease lost, lead returned, or ctx done while not
// leading. When it returns lead has returned and the Lease is released.
func campaign(ctx context.Context, lock *renewals, cfg Config, lead func(context.Context)) error {
	log := cfg.Logger
	// The elector runs on a context of its own so that the Lease stays
	// renewed while lead finishes after ctx ended.
	elect, stopElecting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElecting()
	var (
		mu      sync.Mutex
		leading bool // lead was started: its return stops the elector
		over    bool // the elector returned: too late to start lead
		led     = make(chan struct{})
	)
	stopUnlessLeading := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !leading {
			stopElecting()
		}
	})
	defer stopUnlessLeading()

	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		Name:          cfg.Name,
		// Released below, once lead has returned.
		ReleaseOnCancel: false,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				mu.Lock()
				if over || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				leading = true
				mu.Unlock()
				defer close(led)
				defer stopElecting() // nothing to hold the Lease for any more
				lctx, cancel := lock.fence(lctx, cfg.RetryPeriod+cfg.RenewDeadline, log)
				defer cancel()
				log.Info("leading: this replica runs the passes", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
				lead(lctx)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != cfg.Identity {
					log.Info("another replica leads", "leader", id)
				}
				if cfg.OnNewLeader != nil {
					cfg.OnNewLeader(id)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	le.Run(elect) // returns when the Lease is lost or elect is cancelled

	mu.Lock()
	over = true
	wasLeading := leading
	mu.Unlock()
	if wasLeading {
		<-led
		log.Info("not leading any more", "identity", cfg.Identity)
	}
	if le.IsLeader() {
		release(lock, cfg)
	}
	return nil
}

// release hands the Lease back, as client-go's ReleaseOnCancel would, so
// another replica takes over without waiting for it to expire. It is only
// called once lead has returned. A failure is harmless: the Lease expires.
func release(lock *renewals, cfg Config) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RenewDeadline)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil {
		cfg.Logger.Warn("Lease not released; it expires on its own", "error", err, "after", cfg.LeaseDuration)
		return
	}
	if rec.HolderIdentity != cfg.Identity {
		return
	}
	now := time.Now()
	// The update carries the version just read: if another replica has
	// written the Lease since, it fails rather than overwrite it.
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaseDurationSeconds: 1,
		AcquireTime:          metaTime(now),
		RenewTime:            metaTime(now),
		LeaderTransitions:    rec.LeaderTransitions,
	})
	if err != nil {
		cfg.Logger.Warn("Lease not released; it expires on its own", "error", err, "after", cfg.LeaseDuration)
		return
	}
	cfg.Logger.Info("Lease released", "lease", cfg.Namespace+"/"+cfg.Name)
}

// renewals is the Lease lock, remembering when the last successful write
// naming this replica as holder was sent.
type renewals struct {
	resourcelock.Interface

	mu   sync.Mutex
	last time.Time
}

func (r *renewals) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	return r.track(rec, func() error { return r.Interface.Create(ctx, rec) })
}

func (r *renewals) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	return r.track(rec, func() error { return r.Interface.Update(ctx, rec) })
}

func (r *renewals) track(rec resourcelock.LeaderElectionRecord, write func() error) error {
	sent := time.Now()
	err := write()
	if err == nil && rec.HolderIdentity == r.Identity() {
		r.mu.Lock()
		r.last = sent
		r.mu.Unlock()
	}
	return err
}

func (r *renewals) lastRenewal() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// fence returns lead's context: it ends with ctx (client-go's leading
// context), and when no renewal sent in the last `within` has succeeded.
func (r *renewals) fence(ctx context.Context, within time.Duration, log *slog.Logger) (context.Context, context.CancelFunc) {
	fctx, cancel := context.WithCancelCause(ctx)
	go func() {
		for {
			wait := time.Until(r.lastRenewal().Add(within))
			if wait <= 0 {
				log.Warn("no Lease renewal succeeded in time: stopping the work in flight", "within", within)
				cancel(errRenewalOverdue)
				return
			}
			t := time.NewTimer(wait)
			select {
			case <-fctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	return fctx, func() { cancel(context.Canceled) }
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
