// Package monitoring holds the tests of deploy/monitoring: the
// PrometheusRule and the Grafana dashboard that ship with certsync.
//
// They hold both to what certsync exports: every metric they name is
// registered by metrics.New() (a rename breaks the build of this test, not
// someone's pager), promtool accepts the rules and every dashboard query,
// each alert fires when it should and stays silent when it should not on
// series recorded from a real agent (alerts_test.go), and kustomize ships
// both the way the Prometheus Operator and Grafana's sidecar expect.
package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/certsync/certsync/internal/testbed"
	"github.com/certsync/certsync/metrics"
)

const (
	ruleFile      = "prometheusrule.yaml"
	dashboardFile = "grafana-dashboard.json"
)

// ruleSpec is the part of a PrometheusRule that promtool reads.
type ruleSpec struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// alerts lists the alerting rules of prometheusrule.yaml by name.
func (s ruleSpec) alerts() map[string]rule {
	out := map[string]rule{}
	for _, g := range s.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = r
			}
		}
	}
	return out
}

// prometheusRule reads prometheusrule.yaml: its spec typed, and as written
// (for promtool, which must see every field, known to this test or not).
func prometheusRule(t *testing.T) (ruleSpec, map[string]any) {
	t.Helper()
	b, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Spec       json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatalf("%s: %v", ruleFile, err)
	}
	if obj.APIVersion != "monitoring.coreos.com/v1" || obj.Kind != "PrometheusRule" {
		t.Fatalf("%s is a %s %s, want a monitoring.coreos.com/v1 PrometheusRule", ruleFile, obj.APIVersion, obj.Kind)
	}
	var spec ruleSpec
	var raw map[string]any
	if err := json.Unmarshal(obj.Spec, &spec); err != nil {
		t.Fatalf("%s spec: %v", ruleFile, err)
	}
	if err := json.Unmarshal(obj.Spec, &raw); err != nil {
		t.Fatalf("%s spec: %v", ruleFile, err)
	}
	return spec, raw
}

// rulesFile writes the PrometheusRule's spec as a plain Prometheus rules
// file: the one copy of the rules, as promtool and a plain Prometheus read
// them.
func rulesFile(t *testing.T, dir string) string {
	t.Helper()
	_, raw := prometheusRule(t)
	return writeYAML(t, filepath.Join(dir, "certsync.rules.yaml"), raw)
}

func writeYAML(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// promtool runs the promtool built by hack/build-tools.sh.
func promtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testbed.Tool(t, "promtool"), args...).CombinedOutput()
	return string(out), err
}

func TestRulesPassPromtoolCheck(t *testing.T) {
	spec, _ := prometheusRule(t)
	n := 0
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" {
				continue
			}
			// What on-call needs from every alert: how bad, what, and
			// what to look at.
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s has no %s annotation", r.Alert, a)
				}
			}
		}
	}
	dir := t.TempDir()
	out, err := promtool(t, "check", "rules", "--lint=all", "--lint-fatal", rulesFile(t, dir))
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", n); !strings.Contains(out, want) {
		t.Errorf("promtool check rules says:\n%s\nwant %q", out, want)
	}

	// The same check refuses a broken rule: it is promtool that passed
	// the rules above, not a harness that passes anything.
	broken := writeYAML(t, filepath.Join(dir, "broken.yaml"), map[string]any{"groups": []any{map[string]any{
		"name": "broken", "rules": []any{map[string]any{"alert": "Broken", "expr": "certsync_passes_total{result=\"error\"} >"}}}}})
	if out, err := promtool(t, "check", "rules", broken); err == nil {
		t.Errorf("promtool check rules accepted a broken expression:\n%s", out)
	}
}

// dashboard is the part of a Grafana dashboard these tests look at.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func readDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardFile, err)
	}
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	return d, all
}

// The dashboard imports into Grafana 10+: a data source variable every
// query uses, a query in every panel, panels that fit the 24-column grid
// without overlapping, and a panel for each topic the issue asked for.
func TestDashboard(t *testing.T) {
	d, panels := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and a Grafana 10+ schema (36+)", d.UID, d.Title, d.SchemaVersion)
	}
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDatasourceVar = true
		}
	}
	if !hasDatasourceVar {
		t.Error(`no "datasource" template variable of type datasource for Prometheus`)
	}
	ids := map[int]string{}
	var placed []panel
	exprs := ""
	for _, p := range panels {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v does not fit the 24-column grid", p.Title, p.GridPos)
		}
		for _, q := range placed {
			if p.GridPos.X < q.GridPos.X+q.GridPos.W && q.GridPos.X < p.GridPos.X+p.GridPos.W &&
				p.GridPos.Y < q.GridPos.Y+q.GridPos.H && q.GridPos.Y < p.GridPos.Y+p.GridPos.H {
				t.Errorf("panels %q and %q overlap", p.Title, q.Title)
			}
		}
		placed = append(placed, p)
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q query %s is empty", p.Title, q.RefID)
			}
			if q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: datasource %+v, want the ${datasource} variable", p.Title, q.RefID, q.Datasource)
			}
			exprs += q.Expr + "\n"
		}
	}
	for topic, metric := range map[string]string{
		"certificates by days to expiry": "certmanager_certificate_expiration_timestamp_seconds",
		"orders by result":               "certsync_acme_orders_total",
		"renewals by result":             "certsync_acme_renewals_total",
		"pass duration":                  "certsync_pass_duration_seconds_bucket",
		"Git push conflicts":             "certsync_git_push_conflicts_total",
		"apply errors":                   "certsync_apply_errors_total",
		"Git and API server reachable":   "certsync_remote_reachable",
	} {
		if !strings.Contains(exprs, metric) {
			t.Errorf("no panel shows %s (%s)", topic, metric)
		}
	}
}

// dashboardVariables are what Grafana puts in place of the variables the
// queries use, for promtool to parse them.
var dashboardVariables = strings.NewReplacer(`"$job"`, `".*"`, "$__rate_interval", "5m")

// Every dashboard query parses as PromQL: promtool checks them as
// recording rules, with Grafana's variables filled in.
func TestDashboardQueriesParse(t *testing.T) {
	_, panels := readDashboard(t)
	var rules []any
	for _, p := range panels {
		for _, q := range p.Targets {
			expr := dashboardVariables.Replace(q.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q query %s uses a variable the dashboard does not define: %s", p.Title, q.RefID, q.Expr)
				continue
			}
			rules = append(rules, map[string]any{"record": fmt.Sprintf("dashboard:panel_%d:%s", p.ID, q.RefID), "expr": expr})
		}
	}
	file := writeYAML(t, filepath.Join(t.TempDir(), "dashboard.rules.yaml"), map[string]any{
		"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if out, err := promtool(t, "check", "rules", file); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}

// registeredMetrics are the metric names certsync serves (histograms with
// their _bucket, _sum and _count), from a registry that has seen one pass
// that set every field: vectors appear only once a child exists.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	now := time.Now()
	m.RecordPass(metrics.Pass{
		Read: true, Pushed: true,
		Certificates: []metrics.Certificate{{Name: "web", Namespace: "shop", IssuerName: "le", IssuerKind: "ClusterIssuer", IssuerGroup: "cert-manager.io",
			NotBefore: now, NotAfter: now.Add(90 * 24 * time.Hour), RenewalTime: now.Add(60 * 24 * time.Hour), Ready: true}},
		Reachable: map[string]bool{metrics.RemoteGit: true, metrics.RemoteAPIServer: true},
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	families := parseExposition(t, "metrics.New()", rec.Body.Bytes())
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}

func parseExposition(t *testing.T, what string, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse %s: %v", what, err)
	}
	return families
}

// certsyncMetric finds the names of certsync's metrics (and cert-manager's
// it exports) in an expression.
var certsyncMetric = regexp.MustCompile(`\b(?:certsync|certmanager)_[A-Za-z0-9_]+`)

// usedMetrics maps each metric name the rules and the dashboard use to
// where.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	note := func(where, expr string) {
		for _, name := range certsyncMetric.FindAllString(expr, -1) {
			if !slices.Contains(used[name], where) {
				used[name] = append(used[name], where)
			}
		}
	}
	spec, _ := prometheusRule(t)
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			note("rule "+r.Alert+r.Record, r.Expr)
		}
	}
	d, panels := readDashboard(t)
	for _, p := range panels {
		for _, q := range p.Targets {
			note("panel "+p.Title, q.Expr)
		}
	}
	for _, v := range d.Templating.List {
		note("variable "+v.Name, v.Definition)
		if q, ok := v.Query.(map[string]any); ok {
			note("variable "+v.Name, fmt.Sprint(q["query"]))
		}
	}
	return used
}

// A metric renamed or removed in package metrics breaks this test, not an
// alert in production (an alert on a series that does not exist is
// silently never firing).
func TestRulesAndDashboardUseRegisteredMetrics(t *testing.T) {
	registered := registeredMetrics(t)
	used := usedMetrics(t)
	if len(used) < 10 {
		t.Fatalf("found only %d metric names in the rules and the dashboard: %v", len(used), used)
	}
	for name, where := range used {
		if !registered[name] {
			t.Errorf("%s uses %s, which metrics.New() does not serve", strings.Join(where, ", "), name)
		}
	}
}

// kustomize build ships the PrometheusRule as written and the dashboard as
// a ConfigMap that Grafana's sidecar loads (label grafana_dashboard: "1").
func TestKustomizeBuild(t *testing.T) {
	out, err := exec.Command(testbed.Tool(t, "kustomize"), "build", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("kustomize build: %v\n%s", err, out)
	}
	dash, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	_, wantSpec := prometheusRule(t)
	seen := map[string]bool{}
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Data map[string]string `json:"data"`
			Spec map[string]any    `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("kustomize output: %v\n%s", err, doc)
		}
		seen[obj.Kind+"/"+obj.Metadata.Name] = true
		switch obj.Kind {
		case "ConfigMap":
			if obj.Metadata.Labels["grafana_dashboard"] != "1" {
				t.Errorf("ConfigMap %s labels %v: the Grafana sidecar wants grafana_dashboard: \"1\"", obj.Metadata.Name, obj.Metadata.Labels)
			}
			if obj.Data["certsync.json"] != string(dash) {
				t.Errorf("ConfigMap %s does not carry %s as certsync.json (keys %v)", obj.Metadata.Name, dashboardFile, slices.Collect(maps.Keys(obj.Data)))
			}
		case "PrometheusRule":
			if !reflect.DeepEqual(obj.Spec, wantSpec) {
				t.Errorf("the built PrometheusRule's spec differs from %s", ruleFile)
			}
		}
	}
	want := map[string]bool{"ConfigMap/certsync-grafana-dashboard": true, "PrometheusRule/certsync": true}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("kustomize build made %v, want %v", seen, want)
	}
}
