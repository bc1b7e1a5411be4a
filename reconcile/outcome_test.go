package reconcile

// The counts a pass reports for metrics and alerts: which remote it could
// not reach, how many pushes lost a race, which Secrets failed to apply or
// prune, which renewals keep failing. Alerts are only as right as these.

import (
	"context"
	"crypto"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// memCluster is an API server in memory whose requests can be made to fail.
type memCluster struct {
	observed                        []ObservedSecret
	observeErr, applyErr, deleteErr error
}

func (c *memCluster) Observe(context.Context) ([]ObservedSecret, error) {
	return c.observed, c.observeErr
}
func (c *memCluster) Apply(context.Context, *corev1.Secret) error  { return c.applyErr }
func (c *memCluster) Delete(context.Context, string, string) error { return c.deleteErr }

// flakyRepo is memRepo whose fetches can fail, as a Git server that is away.
type flakyRepo struct {
	*memRepo
	fetchErr error
}

func (r *flakyRepo) Fetch(ctx context.Context) (Tree, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.fetchErr != nil {
		return nil, r.fetchErr
	}
	return r.memRepo.Fetch(ctx)
}

func newOutcomeReconciler(t *testing.T, repo Repository, cluster Cluster, ca *testCA, now *time.Time) *Reconciler {
	t.Helper()
	r, err := New(Config{
		Repo:       repo,
		Encryption: func([]byte) (Encrypter, error) { return fakeEnc{}, nil },
		Issuers: func(context.Context, *declared.Issuer, crypto.Signer, issuer.SecretGetter) (issuer.Issuer, error) {
			return ca, nil
		},
		Cluster: cluster,
		Clock:   func() time.Time { return *now },
		Agent:   "agent-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPassReportsWhatItReached(t *testing.T) {
	gitDown := errors.New("dial tcp 10.0.0.1:443: connect: connection refused")
	forbidden := errors.New(`secrets is forbidden: User "certsync" cannot list resource "secrets"`)
	for _, tc := range []struct {
		name string
		// setup breaks what the case needs; cluster is nil for a
		// Git-only agent.
		setup          func(repo *flakyRepo, cluster *memCluster)
		noCluster      bool
		cancel         bool
		wantErr        bool
		git, apiserver Reach
		pushRaces      int
	}{
		{name: "all well", git: Reached, apiserver: Reached},
		{name: "no cluster: the API server is not tried", noCluster: true, git: Reached, apiserver: NotTried},
		{
			name:    "Git away: the API server is not tried",
			setup:   func(repo *flakyRepo, _ *memCluster) { repo.fetchErr = gitDown },
			wantErr: true, git: Unreachable, apiserver: NotTried,
		},
		{
			name:    "API server refuses: Git was reached",
			setup:   func(_ *flakyRepo, c *memCluster) { c.observeErr = forbidden },
			wantErr: true, git: Reached, apiserver: Unreachable,
		},
		{
			name: "fetch works, push does not",
			setup: func(repo *flakyRepo, _ *memCluster) {
				repo.beforePush = func(r *memRepo) { r.down = true }
			},
			wantErr: true, git: Unreachable, apiserver: Reached,
		},
		{
			name: "a lost push race is an answer, and counted",
			setup: func(repo *flakyRepo, _ *memCluster) {
				repo.beforePush = func(r *memRepo) {
					r.mu.Lock()
					defer r.mu.Unlock()
					moved := &memTree{id: "other", files: map[string][]byte{"README.md": []byte("someone else")}, parent: r.remote}
					for p, c := range r.remote.files {
						moved.files[p] = c
					}
					r.remote = moved
				}
			},
			git: Reached, apiserver: Reached, pushRaces: 1,
		},
		{
			name:    "a stopped pass says nothing about the remotes",
			setup:   func(repo *flakyRepo, _ *memCluster) { repo.fetchErr = gitDown },
			cancel:  true,
			wantErr: true, git: NotTried, apiserver: NotTried,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := &flakyRepo{memRepo: newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a")})}
			cluster := &memCluster{}
			if tc.setup != nil {
				tc.setup(repo, cluster)
			}
			var cl Cluster = cluster
			if tc.noCluster {
				cl = nil
			}
			now := t0
			r := newOutcomeReconciler(t, repo, cl, newTestCA(t), &now)
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			res, err := r.Reconcile(ctx, Options{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if res.Git != tc.git || res.APIServer != tc.apiserver || res.PushRaces != tc.pushRaces {
				t.Errorf("Git %d, APIServer %d, PushRaces %d; want %d, %d, %d (0 not tried, 1 reached, 2 unreachable)",
					res.Git, res.APIServer, res.PushRaces, tc.git, tc.apiserver, tc.pushRaces)
			}
		})
	}
}

// Secrets that fail to apply or prune are counted, apart from the other
// problems of the pass.
func TestPassCountsApplyAndPruneErrors(t *testing.T) {
	repo := &flakyRepo{memRepo: newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a")})}
	// An owned Secret that nothing declares any more: the pass prunes it.
	orphan := ObservedSecret{Namespace: "ns", Name: "orphan-tls", Annotations: map[string]string{
		committed.AnnotationCertificate: "ns/orphan", committed.AnnotationSerial: "01"}}
	cluster := &memCluster{
		observed:  []ObservedSecret{orphan},
		applyErr:  errors.New(`namespaces "ns" not found`),
		deleteErr: errors.New("the server has asked for the client to provide credentials"),
	}
	now := t0
	res, err := newOutcomeReconciler(t, repo, cluster, newTestCA(t), &now).Reconcile(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Issued) != 1 || res.ApplyErrors != 1 || res.PruneErrors != 1 || len(res.Problems) != 2 {
		t.Fatalf("issued %d, apply errors %d, prune errors %d, problems %v; want 1, 1, 1 and both errors",
			len(res.Issued), res.ApplyErrors, res.PruneErrors, res.Problems)
	}
	if res.APIServer != Reached {
		t.Errorf("APIServer = %d: a Secret the server refused is an answer, not an outage", res.APIServer)
	}
}

// A failed renewal is counted as one, and the backoff state the pass
// leaves says which certificate keeps failing, until an order succeeds.
func TestPassReportsFailingRenewals(t *testing.T) {
	repo := newMemRepo(map[string]string{"le.yaml": testIssuer, "a.yaml": testCert("a"), "b.yaml": testCert("b")})
	ca := newTestCA(t)
	now := t0
	r := newTestReconciler(t, repo, ca, &now)
	if res, err := r.Reconcile(context.Background(), Options{}); err != nil || res.Failed != 0 || len(res.Failures) != 0 {
		t.Fatalf("first issuance: err %v, failed %d, failures %v", err, res.Failed, res.Failures)
	}
	// Past the renewal time of both (two thirds of 90 days): one renewal
	// fails at the CA.
	now = t0.Add(61 * 24 * time.Hour)
	ca.failNext = 1
	res, err := r.Reconcile(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 1 || res.FailedRenewals != 1 || len(res.Issued) != 1 || res.Issued[0].Kind != Renew {
		t.Fatalf("failed %d, failed renewals %d, issued %+v; want one renewal failed and one renewed", res.Failed, res.FailedRenewals, res.Issued)
	}
	failing := "ns/a"
	if res.Issued[0].Certificate == "ns/a" {
		failing = "ns/b"
	}
	if f, ok := res.Failures[failing]; !ok || f.Count != 1 || len(res.Failures) != 1 {
		t.Fatalf("failures after the pass = %+v, want %s once", res.Failures, failing)
	}
	// A pass that orders nothing (backing off) still reports the failure.
	res, err = r.Reconcile(context.Background(), Options{})
	if err != nil || res.Failed != 0 || res.Failures[failing].Count != 1 {
		t.Fatalf("while backing off: err %v, failed %d, failures %+v", err, res.Failed, res.Failures)
	}
	// After the Retry-After the renewal works and the failure is gone.
	now = now.Add(4 * time.Hour)
	res, err = r.Reconcile(context.Background(), Options{})
	renewed := false
	for _, is := range res.Issued { // the test CA's certificates are all due again
		renewed = renewed || is.Certificate == failing
	}
	if err != nil || !renewed || len(res.Failures) != 0 {
		t.Fatalf("after the retry: err %v, issued %+v, failures %+v", err, res.Issued, res.Failures)
	}
}
