package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/cluster"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/encrypt"
	"github.com/certsync/certsync/gitsrc"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/issuer/acme"
	"github.com/certsync/certsync/issuer/ca"
	"github.com/certsync/certsync/reconcile"
	"github.com/certsync/certsync/restore"
)

// This file connects the packages: each adapter translates one library
// package's API to the seam the reconciler defines, so the reconciler
// never sees go-git, sops, lego or client-go.

// gitRepository adapts gitsrc to reconcile.Repository.
type gitRepository struct{ repo *gitsrc.Repo }

var _ reconcile.Repository = gitRepository{}

func (g gitRepository) Fetch(ctx context.Context) (reconcile.Tree, error) {
	s, err := g.repo.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (g gitRepository) Pending(ctx context.Context) (int, error) { return g.repo.Pending(ctx) }

func (g gitRepository) PendingChanges(ctx context.Context) ([]reconcile.FileChange, error) {
	changes, err := g.repo.PendingChanges(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]reconcile.FileChange, len(changes))
	for i, c := range changes {
		out[i] = reconcile.FileChange{Path: c.Path, Content: c.Content, Delete: c.Delete}
	}
	return out, nil
}

func (g gitRepository) Local(ctx context.Context) (reconcile.Tree, error) {
	s, err := g.repo.Local(ctx)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (g gitRepository) Reset(ctx context.Context, to reconcile.Tree) error {
	s, ok := to.(*gitsrc.Snapshot)
	if !ok {
		return fmt.Errorf("reset: not a snapshot of this repository")
	}
	return g.repo.Reset(ctx, s)
}

func (g gitRepository) Commit(ctx context.Context, parent reconcile.Tree, changes []reconcile.FileChange, message string) (reconcile.Tree, error) {
	s, ok := parent.(*gitsrc.Snapshot)
	if !ok {
		return nil, fmt.Errorf("commit: parent is not a snapshot of this repository")
	}
	out := make([]gitsrc.Change, len(changes))
	for i, c := range changes {
		out[i] = gitsrc.Change{Path: c.Path, Content: c.Content, Delete: c.Delete}
	}
	return g.repo.Commit(ctx, s, out, message)
}

func (g gitRepository) Push(ctx context.Context) error {
	err := g.repo.Push(ctx)
	if errors.Is(err, gitsrc.ErrNonFastForward) {
		return fmt.Errorf("%w: %w", reconcile.ErrPushRace, err)
	}
	return err
}

// clusterApplier adapts cluster.Client to reconcile.Cluster.
type clusterApplier struct {
	c *cluster.Client
	// namespaces limits Observe (--namespaces); nil: all namespaces.
	namespaces []string
}

var (
	_ reconcile.Cluster       = clusterApplier{}
	_ reconcile.EventRecorder = clusterApplier{}
)

func (a clusterApplier) Apply(ctx context.Context, s *corev1.Secret) error { return a.c.Apply(ctx, s) }

func (a clusterApplier) Event(ctx context.Context, ns, name, eventType, reason, message string) error {
	return a.c.Event(ctx, ns, name, eventType, reason, message)
}
func (a clusterApplier) Delete(ctx context.Context, ns, name string) error {
	return a.c.Delete(ctx, ns, name)
}

func (a clusterApplier) Observe(ctx context.Context) ([]reconcile.ObservedSecret, error) {
	obs, err := a.c.Observe(ctx, a.namespaces)
	if err != nil {
		return nil, err
	}
	out := make([]reconcile.ObservedSecret, len(obs))
	for i, o := range obs {
		out[i] = reconcile.ObservedSecret{Namespace: o.Namespace, Name: o.Name, Annotations: o.Annotations, Drifted: o.Drifted}
	}
	return out, nil
}

// encrypterFactory builds the SOPS encrypter of a pass from the tree's
// .sops.yaml and the age identities found at start-up.
func encrypterFactory(identities []byte, log *slog.Logger) reconcile.NewEncrypter {
	return func(sopsConfig []byte) (reconcile.Encrypter, error) {
		return newSOPSEncrypter(sopsConfig, identities, log)
	}
}

func newSOPSEncrypter(sopsConfig, identities []byte, log *slog.Logger) (sopsEncrypter, error) {
	s, err := encrypt.New(encrypt.Config{SOPSConfig: sopsConfig, AgeIdentities: identities, Logger: log})
	if err != nil {
		return sopsEncrypter{}, err
	}
	return sopsEncrypter{s}, nil
}

// sopsEncrypter adapts encrypt.SOPS to reconcile.Encrypter: a file none of
// the agent's identities opens is reported with reconcile.ErrNoKey.
type sopsEncrypter struct{ *encrypt.SOPS }

var (
	_ reconcile.Encrypter         = sopsEncrypter{}
	_ reconcile.RecipientLister   = sopsEncrypter{}
	_ restore.Decrypter           = sopsEncrypter{}
	_ reconcile.DocumentDecrypter = sopsEncrypter{}
	_ reconcile.RuleIndexer       = sopsEncrypter{}
)

func (s sopsEncrypter) Decrypt(ctx context.Context, path string, ciphertext []byte) ([]byte, error) {
	plain, err := s.SOPS.Decrypt(ctx, path, ciphertext)
	if errors.Is(err, encrypt.ErrNoKey) {
		return nil, noKeyError{err}
	}
	return plain, err
}

func (s sopsEncrypter) DecryptDocument(ctx context.Context, path string, ciphertext []byte) (map[string]any, error) {
	doc, err := s.SOPS.DecryptDocument(ctx, path, ciphertext)
	if errors.Is(err, encrypt.ErrNoKey) {
		return nil, noKeyError{err}
	}
	return doc, err
}

// noKeyError keeps encrypt's message and answers to both sentinels.
type noKeyError struct{ err error }

func (e noKeyError) Error() string   { return e.err.Error() }
func (e noKeyError) Unwrap() []error { return []error{e.err, reconcile.ErrNoKey} }

// issuerFactory builds the issuer of each declared issuer by its type:
// ACME issuers share one HTTP-01 listener; a ca issuer reads its key pair
// (tls.crt, tls.key, ca.crt) from the Secret spec.ca.secretName in the
// issuer's SecretNamespace; a selfSigned issuer signs with each
// certificate's own key. allowedDNS are the lego providers a webhook
// DNS-01 solver may name (--dns01-allow-providers); the reconciler hands
// each issuer the Secrets its manifest refers to.
func issuerFactory(http01 *http01Listener, dns acme.DNS01Options, allowedDNS []string, extraRootsPEM []byte, log *slog.Logger) reconcile.NewIssuer {
	return func(ctx context.Context, iss *declared.Issuer, accountKey crypto.Signer, secrets issuer.SecretGetter) (issuer.Issuer, error) {
		switch {
		case iss.ACME != nil:
			return acme.New(ctx, acme.Config{
				Issuer: *iss, AccountKey: accountKey, HTTP01: http01.solver, DNS01: dns,
				Secrets: secrets, AllowedDNSProviders: allowedDNS,
				ExtraRootsPEM: extraRootsPEM, UserAgent: "certsync", Logger: log,
			})
		case iss.CA != nil:
			return ca.New(ctx, ca.Config{
				Issuer: iss.Key(), Namespace: iss.SecretNamespace(), SecretName: iss.CA.SecretName, Secrets: secrets,
				CRLDistributionPoints: iss.CA.CRLDistributionPoints, OCSPServers: iss.CA.OCSPServers, IssuingCertificateURLs: iss.CA.IssuingCertificateURLs,
			})
		case iss.SelfSigned != nil:
			return ca.NewSelfSigned(ca.SelfSignedConfig{Issuer: iss.Key(), CRLDistributionPoints: iss.SelfSigned.CRLDistributionPoints}), nil
		}
		return nil, fmt.Errorf("%w: %s: no issuer type certsync implements (acme, ca, selfSigned)", issuer.ErrPermanent, iss.Key())
	}
}

// gitAuth reads Git credentials from files and the environment.
func gitAuth(o *options, getenv func(string) string) (gitsrc.Auth, error) {
	var a gitsrc.Auth
	a.Username = o.GitUsername
	a.Password = getenv("CERTSYNC_GIT_PASSWORD")
	if t := getenv("CERTSYNC_GIT_TOKEN"); t != "" {
		a.Password = t
	}
	if o.GitPasswordFile != "" {
		b, err := os.ReadFile(o.GitPasswordFile)
		if err != nil {
			return a, fmt.Errorf("read --git-password-file: %w", err)
		}
		a.Password = strings.TrimSpace(string(b))
	}
	if !strings.HasPrefix(o.Repo, "ssh://") && !strings.Contains(strings.SplitN(o.Repo, "/", 2)[0], "@") {
		return a, nil
	}
	if o.GitSSHKeyFile != "" {
		b, err := os.ReadFile(o.GitSSHKeyFile)
		if err != nil {
			return a, fmt.Errorf("read --git-ssh-key-file: %w", err)
		}
		a.SSHKey = b
	}
	a.SSHKeyPassphrase = getenv("CERTSYNC_GIT_SSH_KEY_PASSPHRASE")
	a.InsecureIgnoreHostKey = o.GitInsecureHostKey
	if !a.InsecureIgnoreHostKey {
		path := o.GitKnownHostsFile
		if path == "" {
			home, _ := os.UserHomeDir()
			path = filepath.Join(home, ".ssh", "known_hosts")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return a, fmt.Errorf("read known_hosts %s: %w (SSH host keys are verified: add the host with ssh-keyscan, or point --git-known-hosts-file at a file)", path, err)
		}
		a.KnownHosts = b
	}
	return a, nil
}
