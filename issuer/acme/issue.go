package acme

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"
	legoapi "github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/lego"

	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// Issue orders a certificate for the request's CSR. Each call uses its own
// lego client configured with the solvers of its names. Every solver and
// credential is checked before the order is placed, so a refused provider
// or a missing Secret costs the CA nothing.
func (i *Issuer) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	// IP identifiers (RFC 8738) are planned with the names: HTTP-01 only.
	p, err := planSolvers(i.acme, append(slices.Clone(req.DNSNames), req.IPAddresses...), req.Labels, i.cfg.HTTP01 != nil)
	if err != nil {
		return nil, err
	}
	if p.http01 {
		if err := i.cfg.HTTP01.ready(); err != nil {
			return nil, err
		}
	}
	routes := map[string]challenge.Provider{}
	for name, idx := range p.dns {
		if routes[name], err = i.dns.get(ctx, idx); err != nil {
			return nil, err
		}
	}
	client, err := i.client(ctx)
	if err != nil {
		return nil, err
	}
	client.Challenge.Remove(challenge.TLSALPN01)
	if p.http01 {
		client.Challenge.Remove(challenge.DNS01)
		if err := client.Challenge.SetHTTP01Provider(i.cfg.HTTP01); err != nil {
			return nil, err
		}
	} else {
		client.Challenge.Remove(challenge.HTTP01)
		if err := client.Challenge.SetDNS01Provider(newRouter(routes, i.cfg.DNS01.PropagationTimeout), dnsOptions(i.cfg.DNS01)...); err != nil {
			return nil, err
		}
	}
	obtain := certificate.ObtainForCSRRequest{CSR: req.CSR, Bundle: true, PreferredChain: i.acme.PreferredChain, Profile: i.acme.Profile}
	if i.acme.EnableDurationFeature && req.Duration > 0 {
		obtain.NotAfter = time.Now().Add(req.Duration)
	}
	if req.Replaces != nil {
		// lego sends it only to a CA that advertises renewalInfo.
		if obtain.ReplacesCertID, err = certificate.MakeARICertID(req.Replaces); err != nil {
			i.log.Warn("cannot name the renewed certificate to the CA (ARI): ordering without it", "certificate", req.Name, "err", err)
		}
	}
	res, err := obtainForCSR(ctx, client, obtain)
	if err != nil && obtain.ReplacesCertID != "" && i.refusedReplacement(ctx, err) {
		// lego already retries "alreadyReplaced" itself; other refusals
		// (the certificate is not this account's, unknown to the CA) must
		// not cost the renewal: order again, without the exemption.
		i.log.Info("the CA refused the ARI replacement: ordering without it", "certificate", req.Name, "err", err)
		obtain.ReplacesCertID = ""
		res, err = obtainForCSR(ctx, client, obtain)
	}
	if err != nil {
		return nil, classify("order", err)
	}
	chain, err := pki.ParseChain(res.Certificate)
	if err != nil {
		return nil, fmt.Errorf("read the certificate the CA returned: %w", err)
	}
	return &issuer.Certificate{ChainPEM: res.Certificate, Leaf: chain[0], URL: res.CertURL}, nil
}

// obtainForCSR runs lego's order. lego's Obtain has no context; stop
// waiting when ctx ends (the order itself is abandoned at the CA, which is
// harmless).
func obtainForCSR(ctx context.Context, client *lego.Client, obtain certificate.ObtainForCSRRequest) (*certificate.Resource, error) {
	type result struct {
		res *certificate.Resource
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := client.Certificate.ObtainForCSR(obtain)
		done <- result{res, err}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-done:
		return r.res, r.err
	}
}

// refusedReplacement reports whether err is the CA refusing the order's
// "replaces" field: a problem document answering the newOrder request
// itself (authorizations and finalization answer other URLs), other than a
// rate limit or a problem the CA would repeat without "replaces".
func (i *Issuer) refusedReplacement(ctx context.Context, err error) bool {
	var pd *legoacme.ProblemDetails
	var rl *legoacme.RateLimitedError
	if !errors.As(err, &pd) || errors.As(err, &rl) || isPermanentProblem(err.Error()) {
		return false
	}
	if pd.Type == legoacme.AlreadyReplacedErr || pd.HTTPStatus == http.StatusConflict {
		return true
	}
	newOrder, derr := i.newOrderURL(ctx)
	return derr == nil && newOrder != "" && pd.URL == newOrder
}

// newOrderURL reads the CA's newOrder URL from its directory. lego keeps
// its copy private; this is asked only after a renewal order failed.
func (i *Issuer) newOrderURL(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.acme.Server, nil)
	if err != nil {
		return "", err
	}
	resp, err := i.httpClient().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ACME directory: %s", resp.Status)
	}
	var dir legoacme.Directory
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&dir); err != nil {
		return "", fmt.Errorf("ACME directory: %w", err)
	}
	return dir.NewOrderURL, nil
}

// RenewalWindow asks the CA when to renew (ARI). ok is false when the CA
// has no renewal information endpoint.
func (i *Issuer) RenewalWindow(ctx context.Context, leaf *x509.Certificate) (issuer.RenewalWindow, bool, error) {
	client, err := i.client(ctx)
	if err != nil {
		return issuer.RenewalWindow{}, false, err
	}
	info, err := client.Certificate.GetRenewalInfo(certificate.RenewalInfoRequest{Cert: leaf})
	if errors.Is(err, legoapi.ErrNoARI) {
		return issuer.RenewalWindow{}, false, nil
	}
	if err != nil {
		return issuer.RenewalWindow{}, false, classify("renewal info", err)
	}
	w := issuer.RenewalWindow{Start: info.SuggestedWindow.Start, End: info.SuggestedWindow.End}
	if info.RetryAfter > 0 {
		w.RetryAfter = time.Now().Add(info.RetryAfter)
	}
	return w, !w.Start.IsZero(), nil
}

// classify wraps a lego error with what was being done and tells
// permanent problems and rate limits apart.
func classify(doing string, err error) error {
	var rl *legoacme.RateLimitedError
	if errors.As(err, &rl) {
		return &issuer.RetryAfterError{Err: fmt.Errorf("%s: %w", doing, err), RetryAfter: retryAfter(rl.RetryAfter)}
	}
	if isPermanentProblem(err.Error()) {
		return fmt.Errorf("%s: %w: %w", doing, issuer.ErrPermanent, err)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Time {
	if s, err := strconv.Atoi(v); err == nil {
		return time.Now().Add(time.Duration(s) * time.Second)
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		return t
	}
	return time.Now().Add(time.Hour)
}
