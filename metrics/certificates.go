package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Certificate is the state of one certificate after a pass.
type Certificate struct {
	Name, Namespace                     string
	IssuerName, IssuerKind, IssuerGroup string
	// NotBefore and NotAfter bound the committed certificate's validity
	// (zero when none is committed); RenewalTime is when it is renewed.
	NotBefore, NotAfter, RenewalTime time.Time
	Ready                            bool
	// FailedOrders counts the orders for it that failed in a row since
	// the last one that worked: 0 for a healthy certificate.
	FailedOrders int
}

// certificates reports cert-manager's certificate gauges from the set of
// the last pass that read the repository. It builds the samples at scrape
// time from one snapshot, so replacing the set is atomic: gauge vectors
// reset and refilled would show a scrape an empty set in between, and an
// alert on an absent series would fire.
type certificates struct {
	expiration, ready, renewal *prometheus.Desc
	notBefore, failedOrders    *prometheus.Desc

	// names are certLabels as label pairs point at them, order the
	// indices of certLabels sorted by name, conditions the pairs of
	// ready_status's condition label: made once, shared by every scrape.
	names      []*string
	order      []int
	conditions [len(conditions)]*dto.LabelPair

	mu    sync.Mutex
	certs []Certificate
}

// certLabels are cert-manager's labels; ready_status adds "condition".
var certLabels = []string{"name", "namespace", "issuer_name", "issuer_kind", "issuer_group"}

func newCertificates() *certificates {
	c := &certificates{
		expiration: prometheus.NewDesc("certmanager_certificate_expiration_timestamp_seconds",
			"The date after which the certificate expires, as a Unix timestamp.", certLabels, nil),
		ready: prometheus.NewDesc("certmanager_certificate_ready_status",
			"The ready status of the certificate (1 for the current condition).", append(slices.Clone(certLabels), "condition"), nil),
		renewal: prometheus.NewDesc("certmanager_certificate_renewal_timestamp_seconds",
			"The time after which the certificate will be renewed, as a Unix timestamp.", certLabels, nil),
		// cert-manager has no gauge for the start of the validity; with it
		// an alert can compare the time left with the whole lifetime,
		// which differs between CAs and profiles (90 days, 45, 160 hours).
		notBefore: prometheus.NewDesc("certsync_certificate_not_before_timestamp_seconds",
			"The date from which the certificate is valid, as a Unix timestamp; with the expiration, its lifetime.", certLabels, nil),
		failedOrders: prometheus.NewDesc("certsync_certificate_consecutive_order_failures",
			"Orders for the certificate that failed in a row since the last that worked (0: none); certsync retries after a backoff of 1h doubling up to 32h, or after a change for a permanent error.", certLabels, nil),
	}
	for i, name := range certLabels {
		c.names = append(c.names, new(name))
		c.order = append(c.order, i)
	}
	slices.SortFunc(c.order, func(a, b int) int { return strings.Compare(certLabels[a], certLabels[b]) })
	for i, cond := range conditions {
		c.conditions[i] = &dto.LabelPair{Name: new("condition"), Value: new(cond)}
	}
	return c
}

// set replaces the set. Should two entries carry the same labels, the last
// wins, as it did with gauge vectors: a duplicate sample would fail the
// whole scrape. Without duplicates (the usual case) it keeps certs itself,
// not a copy: the caller hands the slice over and must not change it.
func (c *certificates) set(certs []Certificate) {
	seen := make(map[[5]string]int, len(certs))
	out, n := certs, 0 // the set is out[:n]; out is certs until a duplicate
	for i, cert := range certs {
		k := [5]string{cert.Name, cert.Namespace, cert.IssuerName, cert.IssuerKind, cert.IssuerGroup}
		if j, dup := seen[k]; dup {
			if n == i { // the first duplicate: the set becomes a copy
				out = make([]Certificate, n, len(certs)-1)
				copy(out, certs[:n])
			}
			out[j] = cert
			continue
		}
		seen[k] = n
		if n != i {
			out = append(out, cert)
		}
		n++
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.certs = out[:n]
}

func (c *certificates) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiration
	ch <- c.ready
	ch <- c.renewal
	ch <- c.notBefore
	ch <- c.failedOrders
}

func (c *certificates) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	certs := c.certs
	c.mu.Unlock()
	for _, cert := range certs {
		// The five label pairs of a certificate are made once and shared
		// by its seven samples; prometheus.MustNewConstMetric would make
		// them for each sample, and a scrape holds every sample until it
		// is written out: for 10,000 certificates ~60 MB, not ~20 MB.
		l := c.labelPairs(cert)
		if !cert.NotAfter.IsZero() {
			ch <- gauge{c.expiration, float64(cert.NotAfter.Unix()), l}
		}
		if !cert.NotBefore.IsZero() {
			ch <- gauge{c.notBefore, float64(cert.NotBefore.Unix()), l}
		}
		ch <- gauge{c.failedOrders, float64(cert.FailedOrders), l}
		if !cert.RenewalTime.IsZero() {
			ch <- gauge{c.renewal, float64(cert.RenewalTime.Unix()), l}
		}
		// As cert-manager: one series per condition, 1 on the current one.
		// certsync never reports Unknown: it reads the certificate itself.
		for i, cond := range conditions {
			v := 0.0
			if cond == "True" && cert.Ready || cond == "False" && !cert.Ready {
				v = 1
			}
			// "condition" sorts before the other labels' names.
			ch <- gauge{c.ready, v, append([]*dto.LabelPair{c.conditions[i]}, l...)}
		}
	}
}

// conditions are the values of ready_status's "condition" label.
var conditions = [...]string{"True", "False", "Unknown"}

// labelPairs are a certificate's labels, sorted by name as Prometheus
// wants them.
func (c *certificates) labelPairs(cert Certificate) []*dto.LabelPair {
	values := [...]string{cert.Name, cert.Namespace, cert.IssuerName, cert.IssuerKind, cert.IssuerGroup}
	pairs := make([]dto.LabelPair, len(values))
	out := make([]*dto.LabelPair, len(values))
	for i, v := range c.order {
		pairs[i].Name, pairs[i].Value = c.names[v], &values[v]
		out[i] = &pairs[i]
	}
	return out
}

// gauge is one sample of a certificate gauge, its labels shared with the
// certificate's other samples (the registry only reads them).
type gauge struct {
	desc   *prometheus.Desc
	value  float64
	labels []*dto.LabelPair
}

func (g gauge) Desc() *prometheus.Desc { return g.desc }

func (g gauge) Write(out *dto.Metric) error {
	out.Label = g.labels
	out.Gauge = &dto.Gauge{Value: new(g.value)}
	return nil
}
