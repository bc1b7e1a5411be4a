// Package acme issues certificates from an ACME CA (Let's Encrypt, ZeroSSL,
// any RFC 8555 server) for one cert-manager ACME Issuer, using lego.
//
// It implements issuer.Issuer and issuer.RenewalAdvisor (ACME Renewal
// Information, RFC 9773). It persists nothing: the caller hands it the
// account key (certsync keeps it in Git) and gets certificates back.
//
// Challenges are chosen per DNS name exactly as cert-manager chooses
// solvers (see SelectSolver). HTTP-01 is answered by one shared
// HTTP01Solver that the caller serves on its listener. DNS-01 providers are
// built per issuer from cert-manager's provider blocks, with credentials
// read through an issuer.SecretGetter: the repository is data, so nothing
// in a manifest configures the agent's process. Their API requests go
// through Config.DNSAPITransport, and when an API refuses the credentials
// the order's error names the Secret keys to check. A webhook block naming any
// other lego provider is built only when the operator allowed that provider
// (Config.AllowedDNSProviders), and only from the operator's environment.
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
	// lego holds them per process: the first DNS-01 order's apply to all.
	// Default: the system resolvers.
	RecursiveNameservers []string
	// CheckPropagation waits until the TXT record is visible before asking
	// the CA to validate. The CLI defaults it to true.
	CheckPropagation bool
	// PropagationTimeout bounds that wait. Default: the longest the
	// order's providers ask for, at least lego's 60 s.
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
	// Secrets resolves the issuer's *SecretRef fields (DNS-01 credentials,
	// the EAB key) in Issuer.SecretNamespace(). Default: none, and an
	// issuer that refers to a Secret fails with a permanent error.
	Secrets issuer.SecretGetter
	// AllowedDNSProviders are the lego DNS provider names a webhook solver
	// may name (solverName). Such a provider is configured from the
	// operator's environment and runs with the agent's credentials, so the
	// repository alone cannot choose one. Default: none.
	AllowedDNSProviders []string
	// DNSAPITransport carries the requests of cert-manager's DNS-01
	// provider blocks to their providers' APIs: cloudflare, digitalocean,
	// route53 (and its STS role assumption), cloudDNS (and Google's token
	// endpoint) and acmeDNS. Set it to reach them through a proxy, to
	// trust a private CA (a TLS-inspecting proxy) or to send a provider's
	// host to a private endpoint. lego's azureDNS and akamai providers
	// build their HTTP clients themselves and never use it: they reach
	// their APIs with their SDKs' default transports (system roots,
	// HTTPS_PROXY). Default: a clone of http.DefaultTransport, to which
	// route53 adds the roots of AWS_CA_BUNDLE when it is set, as lego
	// does; an operator's transport keeps its own trust.
	DNSAPITransport http.RoundTripper
	// ExtraRootsPEM are CAs to trust for the ACME server besides the system
	// pool and spec.acme.caBundle (a private CA, a test CA).
	ExtraRootsPEM []byte
	UserAgent     string
	Logger        *slog.Logger
}

// Issuer orders certificates from one ACME account. Safe for concurrent use.
type Issuer struct {
	cfg  Config
	acme *declared.ACMEIssuer
	user *user
	// transport is shared by every lego client of the issuer (one
	// connection pool); each client gets its own http.Client around it,
	// because lego's client construction rewrites the client's Transport.
	transport  http.RoundTripper
	log        *slog.Logger
	secrets    secretSource
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
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := cfg.Issuer.ACME
	tr, err := transport(a, cfg.ExtraRootsPEM)
	if err != nil {
		return nil, err
	}
	secrets := secretSource{getter: cfg.Secrets, namespace: cfg.Issuer.SecretNamespace()}
	blocks := blockBuilder{secrets: secrets, transport: cfg.DNSAPITransport, customTransport: cfg.DNSAPITransport != nil}
	if blocks.transport == nil {
		blocks.transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	iss := &Issuer{cfg: cfg, acme: a, transport: tr, log: log.With("issuer", cfg.Issuer.Key()),
		user: &user{email: a.Email, key: cfg.AccountKey}, secrets: secrets,
		dns: newDNSProviders(a.Solvers, blocks, cfg.AllowedDNSProviders)}
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
	if reg, err = i.register(ctx, client); err != nil {
		return err
	}
	i.user.reg, i.accountURL = reg, reg.URI
	i.log.Info("registered ACME account", "account", reg.URI)
	return nil
}

// register creates the account, bound to the CA's external account when
// the issuer has an externalAccountBinding.
func (i *Issuer) register(ctx context.Context, client *lego.Client) (*registration.Resource, error) {
	eab := i.acme.ExternalAccountBinding
	if eab == nil {
		reg, err := client.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true})
		if err != nil && strings.Contains(err.Error(), "externalAccountRequired") {
			return nil, fmt.Errorf("%w: register ACME account: %s requires an external account binding: add spec.acme.externalAccountBinding (keyID, and keySecretRef naming a SOPS-encrypted Secret with the HMAC key from the CA's dashboard)", issuer.ErrPermanent, i.acme.Server)
		}
		if err != nil {
			return nil, classify("register ACME account", err)
		}
		return reg, nil
	}
	// lego signs the binding with HS256 whatever keyAlgorithm says, as
	// cert-manager does (the field is deprecated there).
	hmac, err := i.secrets.value(ctx, "externalAccountBinding.keySecretRef", eab.KeySecretRef)
	if err != nil {
		return nil, fmt.Errorf("register ACME account: %w", err)
	}
	reg, err := client.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{TermsOfServiceAgreed: true, Kid: eab.KeyID, HmacEncoded: hmac})
	if err != nil {
		return nil, classify("register ACME account with external account binding "+eab.KeyID, err)
	}
	return reg, nil
}

// AccountURL is the account's URL at the CA.
func (i *Issuer) AccountURL() string { return i.accountURL }

// client builds a lego client for this account. Clients are cheap (one
// directory request) and each order gets its own, so each can carry the
// challenge providers of its own names.
func (i *Issuer) client(ctx context.Context) (*lego.Client, error) {
	lc := lego.NewConfig(i.user)
	lc.CADirURL = i.acme.Server
	// lego.NewClient wraps the client's Transport in place (HTTPS-only
	// check): a client shared by concurrent orders is a data race and
	// grows one wrapper per order. Each lego client gets its own.
	lc.HTTPClient = i.httpClient()
	lc.UserAgent = i.cfg.UserAgent
	c, err := lego.NewClient(lc)
	if err != nil {
		return nil, classify("reach the ACME server "+i.acme.Server, err)
	}
	return c, nil
}

// httpClient is a fresh client around the issuer's shared transport.
func (i *Issuer) httpClient() *http.Client {
	return &http.Client{Transport: i.transport, Timeout: 60 * time.Second}
}

// transport trusts the system roots, extraPEM and spec.acme.caBundle.
func transport(a *declared.ACMEIssuer, extraPEM []byte) (http.RoundTripper, error) {
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
	return tr, nil
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
