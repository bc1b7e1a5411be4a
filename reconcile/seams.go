package reconcile

import (
	"context"
	"crypto"
	"errors"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// Tree is one commit of the repository, read-only.
type Tree interface {
	// Commit is the commit hash, "" for a repository without commits.
	Commit() string
	// Paths lists every file, sorted.
	Paths() []string
	// ReadFile returns a file's content; fs.ErrNotExist when absent. It
	// must be safe for concurrent use: a pass reads files from several
	// goroutines.
	ReadFile(path string) ([]byte, error)
}

// FileChange writes or deletes one file.
type FileChange struct {
	Path    string
	Content []byte
	Delete  bool
}

// ErrPushRace is wrapped by Repository.Push when another writer moved the
// branch first: the pass fetches, re-plans and tries again.
var ErrPushRace = errors.New("push lost a race: the remote branch moved")

// Repository is the Git remote certsync reads and writes.
type Repository interface {
	// Fetch returns the remote branch head.
	Fetch(ctx context.Context) (Tree, error)
	// Pending counts local commits the remote lacks (a push that failed).
	Pending(ctx context.Context) (int, error)
	// PendingChanges lists the files those commits wrote or deleted, so a
	// pass can reuse what they hold when they cannot be pushed as they are.
	PendingChanges(ctx context.Context) ([]FileChange, error)
	// Local returns the local branch head.
	Local(ctx context.Context) (Tree, error)
	// Reset moves the local branch to a tree returned by Fetch.
	Reset(ctx context.Context, to Tree) error
	// Commit writes one commit on top of parent.
	Commit(ctx context.Context, parent Tree, changes []FileChange, message string) (Tree, error)
	// Push publishes the local branch; never forces.
	Push(ctx context.Context) error
}

// ErrNoKey is wrapped by Encrypter.Decrypt when none of the agent's
// identities opens a file. Such a file may be perfectly fine: it is left
// unverified rather than repaired.
var ErrNoKey = errors.New("no decryption key for this file")

// Encrypter encrypts files for the recipients the repository's .sops.yaml
// names for their path, and decrypts them. Decrypt checks the SOPS MAC and
// wraps ErrNoKey when it has no identity for the file.
type Encrypter interface {
	Encrypt(ctx context.Context, path string, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, path string, ciphertext []byte) ([]byte, error)
}

// DocumentDecrypter is the optional capability of an Encrypter that can
// return a file's decrypted values instead of its YAML text: a committed
// Secret is then built from them (render.FromDocument) without writing
// the plaintext out and parsing it again, two thirds of the cost of
// opening one (a new agent opens every committed file once to verify it).
type DocumentDecrypter interface {
	DecryptDocument(ctx context.Context, path string, ciphertext []byte) (map[string]any, error)
}

// RecipientLister is the optional capability of an Encrypter that can say
// which recipients a path should be encrypted to; with it, a change of
// .sops.yaml re-encrypts the affected files.
type RecipientLister interface {
	Recipients(path string) ([]string, error)
}

// RuleIndexer is the optional capability of an Encrypter that tells which
// of .sops.yaml's creation rules encrypts a path. Files under one rule are
// encrypted alike, so the check before ordering (can the result be
// committed encrypted?) runs once per rule instead of once per path: at
// 9,000 new certificates that was 9,000 encryptions before the first order.
type RuleIndexer interface {
	RuleIndex(path string) (int, error)
}

// NewEncrypter builds the Encrypter for one pass from the content of the
// repository's .sops.yaml (nil when the repository has none).
type NewEncrypter func(sopsConfig []byte) (Encrypter, error)

// NewIssuer builds the issuer of a declared Issuer or ClusterIssuer.
// accountKey is the ACME account key certsync keeps in the repository (nil
// for selfSigned and ca issuers, which have no account); secrets resolves
// the manifest's *SecretRef fields (DNS-01 credentials, EAB keys, a ca
// issuer's key pair) from SOPS-encrypted Secrets in the repository and
// certsync's own committed Secrets.
type NewIssuer func(ctx context.Context, iss *declared.Issuer, accountKey crypto.Signer, secrets issuer.SecretGetter) (issuer.Issuer, error)

// ObservedSecret is one certsync-owned Secret in the cluster.
type ObservedSecret struct {
	Namespace, Name string
	Annotations     map[string]string
	Drifted         bool
}

// Cluster is the Kubernetes cluster certsync applies to.
type Cluster interface {
	Apply(ctx context.Context, s *corev1.Secret) error
	Observe(ctx context.Context) ([]ObservedSecret, error)
	Delete(ctx context.Context, namespace, name string) error
}

// EventRecorder is the optional capability of a Cluster that records
// Kubernetes Events on the Secrets it manages (Issued, Renewed, Failed),
// where `kubectl describe` and event exporters show them. An empty name
// records the Event on the namespace itself (a pass's summary of the
// Events past its budget, see Config.EventsPerPass). Event must be safe
// for concurrent use.
type EventRecorder interface {
	Event(ctx context.Context, namespace, name, eventType, reason, message string) error
}
