// Package metrics exposes certsync's Prometheus metrics.
//
// The certificate gauges carry cert-manager's names and labels
// (certmanager_certificate_expiration_timestamp_seconds, _ready_status,
// _renewal_timestamp_seconds with name, namespace, issuer_name, issuer_kind,
// issuer_group), so alerts and dashboards written for cert-manager keep
// working. certsync adds two with the same labels: when the certificate's
// validity began (certsync_certificate_not_before_timestamp_seconds, so an
// alert can speak of a share of its lifetime) and how many orders for it
// failed in a row (certsync_certificate_consecutive_order_failures). They
// hold what the last pass that read the repository found: a pass that fails
// earlier (Git away) leaves them as they were, so alerts on expiry keep
// working through the outage; certsync_passes_total{result="error"} counts
// such passes and certsync_last_successful_pass_timestamp_seconds tells how
// old the gauges are.
//
// certsync's own counters describe passes, orders (and renewals among
// them), pushes (and pushes that lost a race), applies (and Secrets that
// failed to apply or prune); certsync_remote_reachable says whether the
// last pass got through to Git and to the API server.
//
// # What only the leader reports
//
// With leader election one replica works and the others wait. What the
// certificates look like, when the last pass succeeded and whether the
// remotes answered are known to the leader only; a replica that lost the
// lead should call Standby, so its last figures neither go stale in
// dashboards nor keep alerts firing that no longer hold. A replica that
// never led reports none of them.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one registry of certsync's metrics.
type Metrics struct {
	reg *prometheus.Registry

	certs *certificates

	passes        *prometheus.CounterVec
	passDuration  prometheus.Histogram
	lastSuccess   *prometheus.GaugeVec // no labels: absent until the first success
	orders        *prometheus.CounterVec
	renewals      *prometheus.CounterVec
	pushes        *prometheus.CounterVec
	pushConflicts prometheus.Counter
	applies       *prometheus.CounterVec
	applyErrors   *prometheus.CounterVec
	reachable     *prometheus.GaugeVec
}

// Remote names, the values of certsync_remote_reachable's "remote" label.
const (
	RemoteGit       = "git"
	RemoteAPIServer = "apiserver"
)

// New registers every metric on a fresh registry (plus the Go and process
// collectors).
func New() *Metrics {
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		certs: newCertificates(),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_passes_total", Help: "Reconcile passes by result (ok, problems, error).",
		}, []string{"result"}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "certsync_pass_duration_seconds", Help: "Duration of reconcile passes.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certsync_last_successful_pass_timestamp_seconds",
			Help: "When the last pass without error ended, as a Unix timestamp: the certificate gauges are as of then. Absent before the first.",
		}, nil),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_acme_orders_total", Help: "Certificate orders by result (issued, failed).",
		}, []string{"result"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_acme_renewals_total",
			Help: "The orders of certsync_acme_orders_total that were to replace a committed certificate (renewal time, changed declaration, renewal request), by result.",
		}, []string{"result"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_git_pushes_total", Help: "Commits pushed, and passes that changed nothing in Git.",
		}, []string{"result"}),
		pushConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certsync_git_push_conflicts_total",
			Help: "Pushes rejected because the remote branch had moved (another writer); each is followed by a fetch, a re-plan and a new push.",
		}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_applies_total", Help: "Secrets applied to or pruned from the cluster.",
		}, []string{"action"}),
		applyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certsync_apply_errors_total",
			Help: "Secrets that could not be applied to (action=apply) or pruned from (action=prune) the cluster; the errors are logged.",
		}, []string{"action"}),
		reachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certsync_remote_reachable",
			Help: "1 when the last pass that tried got through to the remote (git: fetch and push; apiserver: listing certsync's Secrets), 0 when it failed. Absent until a pass tries.",
		}, []string{"remote"}),
	}
	m.reg.MustRegister(m.certs, m.passes, m.passDuration, m.lastSuccess, m.orders, m.renewals,
		m.pushes, m.pushConflicts, m.applies, m.applyErrors, m.reachable,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SetCertificates replaces the certificate gauges with the given set, so a
// removed certificate stops being reported. A scrape sees either the old
// set or the new one, never a mix or nothing in between. The gauges keep
// certs (10,000 certificates: no second copy): it must not be changed
// afterwards.
func (m *Metrics) SetCertificates(certs []Certificate) { m.certs.set(certs) }

// Standby forgets what only the leader knows (the certificate gauges, the
// last success, whether the remotes answered), for a replica that another
// replica took the lead from: the leader reports them now, and this
// replica's last figures would go stale or keep alerts firing.
func (m *Metrics) Standby() {
	m.certs.set(nil)
	m.lastSuccess.Reset()
	m.reachable.Reset()
}

// Pass records one pass: its result, duration and what it did.
type Pass struct {
	Duration       time.Duration
	Err            error
	Problems       int
	Issued, Failed int
	// Renewed and RenewalsFailed are those orders among Issued and Failed
	// that were to replace a committed certificate.
	Renewed, RenewalsFailed int
	Pushed                  bool
	// PushConflicts counts pushes that lost a race to another writer.
	PushConflicts   int
	Applied, Pruned int
	// ApplyErrors and PruneErrors count Secrets that could not be applied
	// or pruned.
	ApplyErrors, PruneErrors int
	// Reachable tells, by remote (RemoteGit, RemoteAPIServer), whether the
	// pass got through to it. A remote the pass did not try is left out
	// and keeps its last value: a pass that stops at Git never asks the
	// API server, which says nothing about it.
	Reachable map[string]bool
	// Read tells that the pass read the repository: then Certificates is
	// every certificate declared there and replaces the gauges (an empty
	// set removes them all). A pass that failed before reading it (Git
	// away) leaves the gauges as they were: expiry alerts must keep
	// working through an outage, which is when they matter.
	Read         bool
	Certificates []Certificate
}

// RecordPass updates the counters, and the certificate gauges after a pass
// that read the repository.
func (m *Metrics) RecordPass(p Pass) {
	result := "ok"
	switch {
	case p.Err != nil:
		result = "error"
	case p.Problems > 0:
		result = "problems"
	}
	if p.Read {
		m.SetCertificates(p.Certificates)
	}
	if p.Err == nil {
		m.lastSuccess.WithLabelValues().SetToCurrentTime()
	}
	for remote, ok := range p.Reachable {
		v := 0.0
		if ok {
			v = 1
		}
		m.reachable.WithLabelValues(remote).Set(v)
	}
	m.passes.WithLabelValues(result).Inc()
	m.passDuration.Observe(p.Duration.Seconds())
	m.orders.WithLabelValues("issued").Add(float64(p.Issued))
	m.orders.WithLabelValues("failed").Add(float64(p.Failed))
	m.renewals.WithLabelValues("issued").Add(float64(p.Renewed))
	m.renewals.WithLabelValues("failed").Add(float64(p.RenewalsFailed))
	if p.Pushed {
		m.pushes.WithLabelValues("pushed").Inc()
	}
	m.pushConflicts.Add(float64(p.PushConflicts))
	m.applies.WithLabelValues("applied").Add(float64(p.Applied))
	m.applies.WithLabelValues("pruned").Add(float64(p.Pruned))
	m.applyErrors.WithLabelValues("apply").Add(float64(p.ApplyErrors))
	m.applyErrors.WithLabelValues("prune").Add(float64(p.PruneErrors))
}
