package acme

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"time"

	legoacme "github.com/go-acme/lego/v4/acme"
	legoapi "github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge"

	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/pki"
)

// Issue orders a certificate for the request's CSR. Each call uses its own
// lego client configured with the solvers of its names.
func (i *Issuer) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	p, err := planSolvers(i.acme, req.DNSNames, req.Labels, i.cfg.HTTP01 != nil)
	if err != nil {
		return nil, err
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
		if err := client.Challenge.SetDNS01Provider(router{d: i.dns, dns: p.dns}, dnsOptions(i.cfg.DNS01)...); err != nil {
			return nil, err
		}
	}
	obtain := certificate.ObtainForCSRRequest{CSR: req.CSR, Bundle: true, PreferredChain: i.acme.PreferredChain, Profile: i.acme.Profile}
	if i.acme.EnableDurationFeature && req.Duration > 0 {
		obtain.NotAfter = time.Now().Add(req.Duration)
	}
	// lego's Obtain has no context; stop waiting when ctx ends (the order
	// itself is abandoned at the CA, which is harmless).
	type result struct {
		res *certificate.Resource
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := client.Certificate.ObtainForCSR(obtain)
		done <- result{res, err}
	}()
	var r result
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r = <-done:
	}
	if r.err != nil {
		return nil, classify("order", r.err)
	}
	chain, err := pki.ParseChain(r.res.Certificate)
	if err != nil {
		return nil, fmt.Errorf("read the certificate the CA returned: %w", err)
	}
	return &issuer.Certificate{ChainPEM: r.res.Certificate, Leaf: chain[0], URL: r.res.CertURL}, nil
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
