// Package acme issues certificates from an ACME CA (Let's Encrypt, ZeroSSL,
// any RFC 8555 server) for one cert-manager ACME Issuer, using lego.
//
// It implements issuer.Issuer and issuer.RenewalAdvisor (ACME Renewal
// Information, RFC 9773). It persists nothing: the caller hands it the
// account key (certsync keeps it in Git) and gets certificates back.
//
// Challenges are chosen per DNS name exactly as cert-manager chooses
// solvers (see SelectSolver). HTTP-01 is answered by one shared
// HTTP01Solver that the caller serves on its listener; DNS-01 goes through
// lego's provider registry by name.
package acme

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/lego"
	legolog "github.com/go-acme/lego/v4/log"
	"github.com/go-acme/lego/v4/registration"

	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
)

// DNS01Options are the process-wide DNS-01 settings (cert-manager's
// --dns01-recursive-nameservers and friends).
type DNS01Options struct {
	// RecursiveNameservers ("host:port") answer the propagation check.
	// Default: the system resolvers.
	RecursiveNameservers []string
	// CheckPropagation waits until the TXT record is visible before asking
	// the CA to validate. The CLI defaults it to true.
	CheckPropagation bool
	// PropagationTimeout bounds that wait. Default: lego's (60 s).
	PropagationTimeout time.Duration
}

// Config configures an Issuer.
type Config struct {
	// Issuer is the declared Issuer or ClusterIssuer; ACME must be set.
	Issuer declared.Issuer
	// AccountKey identifies the ACME account; an existing account for it is
	// reused, otherwise one is registered (terms of service agreed).
	AccountKey crypto.Signer
	// HTTP01 answers HTTP-01 challenges; nil makes http01 solvers fail.
	HTTP01 *HTTP01Solver
	DNS01  DNS01Options
	// ExtraRootsPEM are CAs to trust for the ACME server besides the system
	// pool and spec.acme.caBundle (a private CA, a test CA).
	ExtraRootsPEM []byte
	UserAgent     string
	Logger        *slog.Logger
	// Getenv reads EAB keys named by keySecretRef. Default: os.Getenv.
	Getenv func(string) string
}

// Issuer orders certificates from one ACME account. Safe for concurrent use.
type Issuer struct {
	cfg        Config
	acme       *declared.ACMEIssuer
	user       *user
	http       *http.Client
	log        *slog.Logger
	dns        *dnsProviders
	accountURL string // account URL
}

var (
	_ issuer.Issuer         = (*Issuer)(nil)
	_ issuer.RenewalAdvisor = (*Issuer)(nil)
)

// user is lego's view of the account.
type user struct {
	email string
	key   crypto.PrivateKey
	reg   *registration.Resource
}

func (u *user) GetEmail() string                        { return u.email }
func (u *user) GetRegistration() *registration.Resource { return u.reg }
func (u *user) GetPrivateKey() crypto.PrivateKey        { return u.key }

var quietLego sync.Once

// New resolves (or registers) the account. It talks to the CA once.
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	if cfg.Issuer.ACME == nil {
		return nil, fmt.Errorf("%s: not an ACME issuer", cfg.Issuer.Key())
	}
	if cfg.AccountKey == nil {
		return nil, errors.New("ACME account key is required")
	}
	// lego logs every step to stderr through a package-level logger.
	quietLego.Do(func() { legolog.Logger = stdlog.New(io.Discard, "", 0) })
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := cfg.Issuer.ACME
	hc, err := httpClient(a, cfg.ExtraRootsPEM)
	if err != nil {
		return nil, err
	}
	iss := &Issuer{cfg: cfg, acme: a, http: hc, log: log.With("issuer", cfg.Issuer.Key()),
		user: &user{email: a.Email, key: cfg.AccountKey}, dns: newDNSProviders(a.Solvers)}
	if err := iss.resolveAccount(ctx); err != nil {
		return nil, err
	}
	return iss, nil
}

// resolveAccount finds the existing account for the key, or registers one.
func (i *Issuer) resolveAccount(ctx context.Context) error {
	client, err := i.client(ctx)
	if err != nil {
		return err
	}
	reg, err := client.Registration.ResolveAccountByKey()
	if err == nil {
		i.user.reg, i.accountURL = reg, reg.URI
		i.log.Debug("reusing ACME account", "account", reg.URI)
		return nil
	}
	if eab := i.acme.ExternalAccountBinding; eab != nil {
		hmac := i.cfg.Getenv(eab.KeySecretRef)
		if hmac == "" {
			return fmt.Errorf("%w: externalAccountBinding: set the HMAC key in the environment variable %s (keySecretRef.name)", issuer.ErrPermanent, eab.KeySecretRef)
		}
		reg, err = client.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{TermsOfServiceAgreed: true, Kid: eab.KeyID, HmacEncoded: hmac})
	} else {
		reg, err = client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
	}
	if err != nil {
		return classify("register ACME account", err)
	}
	i.user.reg, i.accountURL = reg, reg.URI
	i.log.Info("registered ACME account", "account", reg.URI)
	return nil
}

// AccountURL is the account's URL at the CA.
func (i *Issuer) AccountURL() string { return i.accountURL }

// client builds a lego client for this account. Clients are cheap (one
// directory request) and each order gets its own, so each can carry the
// challenge providers of its own names.
func (i *Issuer) client(ctx context.Context) (*lego.Client, error) {
	lc := lego.NewConfig(i.user)
	lc.CADirURL = i.acme.Server
	lc.HTTPClient = i.http
	lc.UserAgent = i.cfg.UserAgent
	c, err := lego.NewClient(lc)
	if err != nil {
		return nil, classify("reach the ACME server "+i.acme.Server, err)
	}
	return c, nil
}

func httpClient(a *declared.ACMEIssuer, extraPEM []byte) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if len(extraPEM) > 0 && !roots.AppendCertsFromPEM(extraPEM) {
		return nil, errors.New("extra ACME server CAs: no PEM certificate found")
	}
	if len(a.CABundle) > 0 && !roots.AppendCertsFromPEM(a.CABundle) {
		return nil, fmt.Errorf("%w: spec.acme.caBundle holds no PEM certificate", issuer.ErrPermanent)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// spec.acme.skipTLSVerify is honoured as cert-manager honours it.
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, InsecureSkipVerify: a.SkipTLSVerify}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

// Error classification: problems the CA will repeat until the declaration
// changes are permanent; rate limits carry their Retry-After.
var permanentProblems = []string{"rejectedIdentifier", "unsupportedIdentifier", "caa", "badCSR", "invalidContact", "unsupportedContact", "externalAccountRequired"}

func isPermanentProblem(msg string) bool {
	for _, p := range permanentProblems {
		if strings.Contains(msg, "urn:ietf:params:acme:error:"+p) {
			return true
		}
	}
	return false
}
