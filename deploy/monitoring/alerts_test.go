package monitoring

// The alerts, run by `promtool test rules` on series made from scrapes of a
// real agent (testdata/README.md): each scenario starts from what the agent
// served, lets passes go by once a minute, changes what the scenario is
// about (Git away, a renewal failing, a certificate nearing its expiry),
// and at chosen minutes asserts the complete set of firing alerts — the
// ones that should fire with their labels, values and text, and silence
// from every other.

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/helpers/templates"
)

// The labels a Prometheus scrape of the agent adds.
var target = map[string]string{"job": "certsync", "instance": "10.42.0.17:8080"}

// sample is one series at one minute.
type sample struct {
	name   string
	labels map[string]string // with the target's, without __name__
	value  float64
}

// key is the series in PromQL notation, as promtool's input_series wants
// it.
func (s sample) key() string {
	var b strings.Builder
	b.WriteString(s.name + "{")
	for i, k := range slices.Sorted(maps.Keys(s.labels)) {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(k + "=" + strconv.Quote(s.labels[k]))
	}
	return b.String() + "}"
}

// frame is what the agent serves at one minute, by series.
type frame map[string]sample

func (f frame) clone() frame {
	out := make(frame, len(f))
	for k, s := range f {
		s.labels = maps.Clone(s.labels)
		out[k] = s
	}
	return out
}

func (f frame) put(s sample) { f[s.key()] = s }

// set sets every series of a metric whose labels include match (the
// metric's only series when match is nil) to value.
func (f frame) set(name string, match map[string]string, value float64) {
	for k, s := range f {
		if s.name == name && includes(s.labels, match) {
			s.value = value
			f[k] = s
		}
	}
}

func (f frame) get(t *testing.T, name string, match map[string]string) float64 {
	t.Helper()
	for _, s := range f {
		if s.name == name && includes(s.labels, match) {
			return s.value
		}
	}
	t.Fatalf("the recording has no %s%v", name, match)
	return 0
}

// drop removes every series of the metrics whose labels include match.
func (f frame) drop(match map[string]string, names ...string) {
	for k, s := range f {
		if slices.Contains(names, s.name) && includes(s.labels, match) {
			delete(f, k)
		}
	}
}

func includes(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// readScrape turns a recorded /metrics into a frame: certsync's and
// cert-manager's counters and gauges with the target's labels. (Go,
// process and histogram series are left out: no rule reads them.)
func readScrape(t *testing.T, file string) frame {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatalf("%v (testdata/README.md says how to record it)", err)
	}
	f := frame{}
	for name, fam := range parseExposition(t, file, b) {
		if !certsyncMetric.MatchString(name) {
			continue
		}
		for _, m := range fam.GetMetric() {
			labels := maps.Clone(target)
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch fam.GetType() {
			case dto.MetricType_COUNTER:
				f.put(sample{name, labels, m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				f.put(sample{name, labels, m.GetGauge().GetValue()})
			}
		}
	}
	return f
}

// recording is the three scrapes of testdata.
type recording struct {
	healthy, gitDown, apiDown frame
	// at is when the healthy scrape was taken: its last successful pass.
	at time.Time
	// okPasses are the passes the healthy scrape counted.
	okPasses float64
}

func readRecording(t *testing.T) recording {
	t.Helper()
	r := recording{
		healthy: readScrape(t, "scrape-healthy.prom"),
		gitDown: readScrape(t, "scrape-git-down.prom"),
		apiDown: readScrape(t, "scrape-apiserver-down.prom"),
	}
	r.at = time.Unix(int64(r.healthy.get(t, "certsync_last_successful_pass_timestamp_seconds", nil)), 0)
	r.okPasses = r.healthy.get(t, "certsync_passes_total", map[string]string{"result": "ok"})
	// What the recording shows is what the alerts rest on: the outage
	// scrapes say which remote failed and keep the other's value and the
	// certificate gauges (a pass that stops early must not drop them).
	for _, c := range []struct {
		f         frame
		git, api  float64
		recording string
	}{{r.healthy, 1, 1, "healthy"}, {r.gitDown, 0, 1, "git-down"}, {r.apiDown, 1, 0, "apiserver-down"}} {
		git := c.f.get(t, "certsync_remote_reachable", map[string]string{"remote": "git"})
		api := c.f.get(t, "certsync_remote_reachable", map[string]string{"remote": "apiserver"})
		if git != c.git || api != c.api {
			t.Fatalf("scrape-%s.prom: reachable git %v apiserver %v, want %v %v", c.recording, git, api, c.git, c.api)
		}
	}
	for _, name := range []string{"certmanager_certificate_expiration_timestamp_seconds", "certsync_certificate_not_before_timestamp_seconds"} {
		for _, f := range []frame{r.gitDown, r.apiDown} {
			if len(r.certs(f, name)) != len(r.certs(r.healthy, name)) {
				t.Fatalf("an outage scrape lost %s", name)
			}
		}
	}
	return r
}

// certs lists a metric's series by "namespace/name".
func (r recording) certs(f frame, name string) map[string]sample {
	out := map[string]sample{}
	for _, s := range f {
		if s.name == name {
			out[s.labels["namespace"]+"/"+s.labels["name"]] = s
		}
	}
	return out
}

// cert is one recorded certificate.
type cert struct {
	labels                       map[string]string // cert-manager's labels and the target's
	notBefore, notAfter, renewal float64
}

func (c cert) lifetime() float64 { return c.notAfter - c.notBefore }

func (r recording) cert(t *testing.T, key string) cert {
	t.Helper()
	exp, ok := r.certs(r.healthy, "certmanager_certificate_expiration_timestamp_seconds")[key]
	if !ok {
		t.Fatalf("the recording has no certificate %s", key)
	}
	return cert{
		labels:    exp.labels,
		notAfter:  exp.value,
		notBefore: r.certs(r.healthy, "certsync_certificate_not_before_timestamp_seconds")[key].value,
		renewal:   r.certs(r.healthy, "certmanager_certificate_renewal_timestamp_seconds")[key].value,
	}
}

// setCert puts a certificate's gauges in a frame, as certsync serves them;
// notBefore 0 leaves its gauge out (a certificate whose start is unknown).
func setCert(f frame, labels map[string]string, notBefore, notAfter, renewal float64, ready bool, failures float64) {
	if notBefore != 0 {
		f.put(sample{"certsync_certificate_not_before_timestamp_seconds", labels, notBefore})
	}
	if notAfter != 0 {
		f.put(sample{"certmanager_certificate_expiration_timestamp_seconds", labels, notAfter})
		f.put(sample{"certmanager_certificate_renewal_timestamp_seconds", labels, renewal})
	}
	f.put(sample{"certsync_certificate_consecutive_order_failures", labels, failures})
	for _, cond := range []string{"True", "False", "Unknown"} {
		v := 0.0
		if cond == "True" && ready || cond == "False" && !ready {
			v = 1
		}
		l := maps.Clone(labels)
		l["condition"] = cond
		f.put(sample{"certmanager_certificate_ready_status", l, v})
	}
}

func renamed(labels map[string]string, name string) map[string]string {
	l := maps.Clone(labels)
	l["name"] = name
	return l
}

// pass is how the agent's pass at a minute went.
type pass int

const (
	passOK       pass = iota
	passProblems      // finished, with a problem (a failed order)
	passGitDown
	passAPIDown
	// passStandby: another replica took the lead; this one passes no
	// more and reports only its counters (metrics.Standby).
	passStandby
)

// scenario is a stretch of minutes of one agent.
type scenario struct {
	name    string
	start   time.Time
	minutes int
	// fresh starts an agent that has passed no pass yet (counters at 0,
	// no last success); otherwise the agent goes on from the recording.
	fresh bool
	// pass says how the pass at each minute went. Default: passOK.
	pass func(m int) pass
	// change changes the frame of each minute, after the pass counters.
	change func(m int, f frame)
	checks []check
}

// check asserts the whole set of firing alerts at a minute: those listed,
// and no other.
type check struct {
	minute int
	firing []firing
}

// firing is one alert expected: the labels of the series its expression
// returns, and the value it has (shown in its text).
type firing struct {
	alert  string
	labels map[string]string
	value  float64
}

// frames plays the scenario: the recorded frame of each pass's outcome,
// with the pass counters and the last success moved along.
func (s scenario) frames(r recording) []frame {
	ok, failed, problems := r.okPasses, 0.0, 0.0
	lastSuccess, succeeded := float64(r.at.Unix()), true
	if s.fresh {
		ok, succeeded = 0, false
	}
	var out []frame
	for m := 0; m <= s.minutes; m++ {
		outcome := passOK
		if s.pass != nil {
			outcome = s.pass(m)
		}
		var f frame
		switch outcome {
		case passOK, passProblems:
			f = r.healthy.clone()
			if outcome == passOK {
				ok++
			} else {
				problems++
			}
			lastSuccess, succeeded = float64(s.start.Add(time.Duration(m)*time.Minute).Unix()), true
		case passGitDown:
			f = r.gitDown.clone()
			failed++
		case passAPIDown:
			f = r.apiDown.clone()
			failed++
		case passStandby:
			f = r.healthy.clone()
			succeeded = false
			f.drop(nil, leaderOnly...)
		}
		f.drop(nil, "certsync_passes_total", "certsync_last_successful_pass_timestamp_seconds")
		for result, n := range map[string]float64{"ok": ok, "error": failed, "problems": problems} {
			if n > 0 { // as client_golang: a result appears once it happened
				f.put(sample{"certsync_passes_total", with(target, "result", result), n})
			}
		}
		if succeeded {
			f.put(sample{"certsync_last_successful_pass_timestamp_seconds", maps.Clone(target), lastSuccess})
		}
		if s.change != nil {
			s.change(m, f)
		}
		out = append(out, f)
	}
	return out
}

// leaderOnly are the metrics a replica stops reporting when it stands
// down (metrics.Standby).
var leaderOnly = []string{
	"certmanager_certificate_expiration_timestamp_seconds", "certmanager_certificate_ready_status",
	"certmanager_certificate_renewal_timestamp_seconds", "certsync_certificate_not_before_timestamp_seconds",
	"certsync_certificate_consecutive_order_failures", "certsync_remote_reachable",
	"certsync_last_successful_pass_timestamp_seconds",
}

func with(labels map[string]string, kv ...string) map[string]string {
	l := maps.Clone(labels)
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// inputSeries writes the frames as promtool input series, one value per
// minute: "_" before a series exists, "stale" when it goes away.
func inputSeries(frames []frame) []any {
	keys := map[string]bool{}
	for _, f := range frames {
		for k := range f {
			keys[k] = true
		}
	}
	var out []any
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		values := make([]string, len(frames))
		present := false // at the minute before
		for i, f := range frames {
			s, ok := f[k]
			switch {
			case ok:
				values[i] = strconv.FormatFloat(s.value, 'f', -1, 64)
			case present:
				values[i] = "stale"
			default:
				values[i] = "_"
			}
			present = ok
		}
		out = append(out, map[string]any{"series": k, "values": strings.Join(values, " ")})
	}
	return out
}

// expand renders an annotation as Prometheus does, with the same
// humanizeDuration.
func expand(t *testing.T, text string, labels map[string]string, value float64) string {
	t.Helper()
	tmpl, err := template.New("").Option("missingkey=zero").
		Funcs(template.FuncMap{"humanizeDuration": templates.HumanizeDuration}).
		Parse("{{$labels := .Labels}}{{$value := .Value}}" + text)
	if err != nil {
		t.Fatalf("annotation %q: %v", text, err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, struct {
		Labels map[string]string
		Value  float64
	}{labels, value}); err != nil {
		t.Fatalf("annotation %q: %v", text, err)
	}
	return b.String()
}

// unitTest is the promtool test group of a scenario.
func (s scenario) unitTest(t *testing.T, r recording, alerts map[string]rule) map[string]any {
	t.Helper()
	var tests []any
	for _, c := range s.checks {
		byAlert := map[string][]any{}
		for _, f := range c.firing {
			rule, ok := alerts[f.alert]
			if !ok {
				t.Fatalf("%s: no alert %s in %s", s.name, f.alert, ruleFile)
			}
			annotations := map[string]string{}
			for k, text := range rule.Annotations {
				annotations[k] = expand(t, text, f.labels, f.value)
			}
			labels := maps.Clone(f.labels)
			maps.Copy(labels, rule.Labels)
			byAlert[f.alert] = append(byAlert[f.alert], map[string]any{"exp_labels": labels, "exp_annotations": annotations})
		}
		for _, name := range slices.Sorted(maps.Keys(alerts)) {
			tests = append(tests, map[string]any{
				"eval_time": fmt.Sprintf("%dm", c.minute), "alertname": name, "exp_alerts": nonNil(byAlert[name])})
		}
	}
	return map[string]any{
		"name":            s.name,
		"interval":        "1m",
		"start_timestamp": strconv.FormatInt(s.start.Unix(), 10),
		"input_series":    inputSeries(s.frames(r)),
		"alert_rule_test": tests,
	}
}

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func TestAlertsOnRecordedScrapes(t *testing.T) {
	spec, _ := prometheusRule(t)
	alerts := spec.alerts()
	r := readRecording(t)
	for name, where := range usedMetrics(t) {
		if !slices.ContainsFunc(slices.Collect(maps.Values(r.healthy)), func(s sample) bool { return s.name == name }) &&
			!strings.HasPrefix(name, "certsync_pass_duration_seconds") {
			t.Errorf("the recording lacks %s (used by %s): record again (testdata/README.md)", name, strings.Join(where, ", "))
		}
	}
	minutes := func(m int) time.Duration { return time.Duration(m) * time.Minute }
	at := func(start time.Time, m int) float64 { return float64(start.Add(minutes(m)).Unix()) }

	api, checkout, wildcard := r.cert(t, "api/api"), r.cert(t, "shop/checkout"), r.cert(t, "shop/example-com")
	agent := maps.Clone(target)
	git, apiserver := with(target, "remote", "git"), with(target, "remote", "apiserver")

	// Renewal failing: from the first minute at which every recorded
	// certificate is past its renewal time and has less than a third of
	// its lifetime left. At minute 5 two are renewed; checkout's order
	// fails, and is retried after the 1h backoff and again after 2h. A
	// certificate declared meanwhile ("new") fails its first issuance.
	due := 0.0
	for _, c := range []cert{api, checkout, wildcard} {
		due = max(due, c.notBefore+c.lifetime()*2/3, c.renewal)
	}
	renewStart := time.Unix(int64(due)+600, 0)
	failures := func(m int) float64 {
		switch {
		case m >= 185:
			return 3
		case m >= 65:
			return 2
		case m >= 5:
			return 1
		}
		return 0
	}
	newCert := renamed(checkout.labels, "new")
	failing := func(m int) []firing {
		return []firing{
			{"CertsyncCertificateRenewalOverdue", checkout.labels, checkout.notAfter - at(renewStart, m)},
			{"CertsyncCertificateOrdersFailing", checkout.labels, failures(m)},
			{"CertsyncCertificateOrdersFailing", newCert, failures(m)},
			{"CertsyncCertificateNotReady", with(newCert, "condition", "False"), 1},
		}
	}

	// Nearing expiry: checkout's renewal has failed for days; it crosses
	// 7 days left at minute 30. A 160-hour certificate crosses a sixth of
	// its lifetime at minute 20 (the 7-day rule would fire from the
	// start: wrong for short-lived certificates); one whose start is not
	// known falls back to 7 days, crossed at minute 10.
	const day = 86400.0
	expiryStart := time.Unix(int64(checkout.notAfter-7*day)-1800, 0)
	short := renamed(checkout.labels, "shortlived")
	shortAfter := at(expiryStart, 20) + 160*3600/6
	legacy := renamed(checkout.labels, "legacy")
	legacyAfter := at(expiryStart, 10) + 7*day

	scenarios := []scenario{
		{
			name: "healthy, as recorded: silence", start: r.at, minutes: 180,
			checks: []check{{minute: 30}, {minute: 179}},
		},
		{
			name: "Git away from minute 10 to 80", start: r.at, minutes: 100,
			pass: func(m int) pass {
				if m >= 10 && m < 80 {
					return passGitDown
				}
				return passOK
			},
			checks: []check{
				{minute: 19},
				{minute: 21, firing: []firing{{"CertsyncGitUnreachable", git, 0}}},
				// The last success was at minute 9: 20 minutes later, plus
				// the alert's 10 minutes.
				{minute: 39, firing: []firing{{"CertsyncGitUnreachable", git, 0}}},
				{minute: 41, firing: []firing{{"CertsyncGitUnreachable", git, 0}, {"CertsyncNoSuccessfulPass", agent, 0}}},
				{minute: 85},
			},
		},
		{
			name: "API server away from minute 10", start: r.at, minutes: 45,
			pass: func(m int) pass {
				if m >= 10 {
					return passAPIDown
				}
				return passOK
			},
			checks: []check{
				{minute: 19},
				{minute: 21, firing: []firing{{"CertsyncAPIServerUnreachable", apiserver, 0}}},
				{minute: 41, firing: []firing{{"CertsyncAPIServerUnreachable", apiserver, 0}, {"CertsyncNoSuccessfulPass", agent, 0}}},
			},
		},
		{
			// It lost the Lease because it lost the API server: the new
			// leader reports now, and this one must not page anyone.
			name: "a replica that stands down during an outage", start: r.at, minutes: 60,
			pass: func(m int) pass {
				switch {
				case m >= 15:
					return passStandby
				case m >= 10:
					return passAPIDown
				}
				return passOK
			},
			checks: []check{{minute: 14}, {minute: 20}, {minute: 26}, {minute: 40}, {minute: 59}},
		},
		{
			name: "a new agent that never reaches Git", start: r.at, minutes: 20, fresh: true,
			pass: func(int) pass { return passGitDown },
			change: func(_ int, f frame) {
				// It never read the repository nor asked the API server.
				f.drop(nil, leaderOnly[:5]...)
				f.drop(map[string]string{"remote": "apiserver"}, "certsync_remote_reachable")
			},
			checks: []check{
				{minute: 5},
				{minute: 15, firing: []firing{{"CertsyncGitUnreachable", git, 0}, {"CertsyncNoSuccessfulPass", agent, 0}}},
			},
		},
		{
			name: "a renewal failing", start: renewStart, minutes: 240,
			pass: func(m int) pass {
				if m == 5 || m == 65 || m == 185 {
					return passProblems
				}
				return passOK
			},
			change: func(m int, f frame) {
				if m >= 5 {
					for _, c := range []cert{api, wildcard} {
						nb := at(renewStart, 5)
						setCert(f, c.labels, nb, nb+c.lifetime(), nb+c.lifetime()*2/3, true, 0)
					}
					f.set("certsync_acme_orders_total", map[string]string{"result": "issued"}, 3+2)
					f.set("certsync_acme_renewals_total", map[string]string{"result": "issued"}, 2)
				}
				f.set("certsync_certificate_consecutive_order_failures", map[string]string{"name": "checkout"}, failures(m))
				setCert(f, newCert, 0, 0, 0, false, failures(m))
				f.set("certsync_acme_orders_total", map[string]string{"result": "failed"}, 2*failures(m))
				f.set("certsync_acme_renewals_total", map[string]string{"result": "failed"}, failures(m))
			},
			checks: []check{
				{minute: 25},
				{minute: 35, firing: failing(35)[3:]},
				// Overdue for an hour since the start; the renewed ones
				// dropped out at minute 5.
				{minute: 70, firing: []firing{failing(70)[0], failing(70)[3]}},
				// Failing since minute 5, for 90 minutes.
				{minute: 100, firing: failing(100)},
				{minute: 239, firing: failing(239)},
			},
		},
		{
			name: "a certificate nearing its expiry", start: expiryStart, minutes: 45,
			change: func(_ int, f frame) {
				for _, c := range []cert{api, wildcard} { // renewed a day ago
					nb := at(expiryStart, 0) - day
					setCert(f, c.labels, nb, nb+c.lifetime(), nb+c.lifetime()*2/3, true, 0)
				}
				f.set("certsync_certificate_consecutive_order_failures", map[string]string{"name": "checkout"}, 9)
				setCert(f, short, shortAfter-160*3600, shortAfter, shortAfter-160*3600/3, true, 4)
				setCert(f, legacy, 0, legacyAfter, legacyAfter-30*day, true, 0)
			},
			checks: []check{
				{minute: 5},
				{minute: 18, firing: []firing{{"CertsyncCertificateExpiresSoon", legacy, legacyAfter - at(expiryStart, 18)}}},
				{minute: 28, firing: []firing{
					{"CertsyncCertificateExpiresSoon", legacy, legacyAfter - at(expiryStart, 28)},
					{"CertsyncCertificateExpiresSoon", short, shortAfter - at(expiryStart, 28)},
				}},
				{minute: 40, firing: []firing{
					{"CertsyncCertificateExpiresSoon", legacy, legacyAfter - at(expiryStart, 40)},
					{"CertsyncCertificateExpiresSoon", short, shortAfter - at(expiryStart, 40)},
					{"CertsyncCertificateExpiresSoon", checkout.labels, checkout.notAfter - at(expiryStart, 40)},
				}},
			},
		},
		{
			name: "a Secret that cannot be applied, then one prune error", start: r.at, minutes: 130,
			change: func(m int, f frame) {
				f.set("certsync_apply_errors_total", map[string]string{"action": "apply"}, float64(min(max(m-9, 0), 60)))
				if m >= 100 {
					f.set("certsync_apply_errors_total", map[string]string{"action": "prune"}, 1)
				}
			},
			checks: []check{
				{minute: 25},
				// One failure a minute: 10 in the 10-minute window.
				{minute: 35, firing: []firing{{"CertsyncApplyErrors", agent, 10}}},
				{minute: 85},
				{minute: 105},
				{minute: 125},
			},
		},
	}
	var groups []any
	for _, s := range scenarios {
		groups = append(groups, s.unitTest(t, r, alerts))
	}
	dir := t.TempDir()
	rules := rulesFile(t, dir)
	tests := writeYAML(t, filepath.Join(dir, "certsync.test.yaml"), map[string]any{
		"rule_files":          []string{filepath.Base(rules)},
		"evaluation_interval": "1m",
		"tests":               groups,
	})
	out, err := promtool(t, "test", "rules", tests)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}
