package settings

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/certsync/certsync/declared"
)

const sample = `apiVersion: certsync.io/v1alpha1
kind: Settings
clusters:
- name: prod-eu
  labels: {env: prod, region: eu}
- name: prod-us
  labels: {env: prod, region: us}
- name: staging
  labels: {env: staging}
delivery:
- paths: [platform/]
  clusters: [all]
- paths: ["apps/*/prod.yaml"]
  clusterSelector: env=prod
- paths: [apps/shop/staging.yaml]
  clusters: [staging]
`

func TestTargets(t *testing.T) {
	s, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		file     string
		delivery declared.Delivery
		want     []string
		err      string
	}{
		{name: "annotation names", file: "platform/x.yaml", delivery: declared.Delivery{Clusters: []string{"staging", "prod-eu"}}, want: []string{"prod-eu", "staging"}},
		{name: "annotation all", file: "x.yaml", delivery: declared.Delivery{Clusters: []string{"all"}}, want: []string{"prod-eu", "prod-us", "staging"}},
		{name: "annotation selector", file: "x.yaml", delivery: declared.Delivery{Selector: "env=prod,region!=us", Line: 7, Column: 35}, want: []string{"prod-eu"}},
		// An error about the annotation points at its value.
		{name: "annotation unknown cluster", file: "x.yaml", delivery: declared.Delivery{Clusters: []string{"prod-ue"}, Line: 7, Column: 27},
			err: `x.yaml:7:27: Certificate shop/web: certsync.io/clusters: cluster "prod-ue" is not declared in certsync.yaml (declared: prod-eu, prod-us, staging)`},
		{name: "annotation selector matches none", file: "x.yaml", delivery: declared.Delivery{Selector: "env=dev", Line: 8, Column: 35},
			err: `x.yaml:8:35: Certificate shop/web: delivered to no cluster: certsync.io/cluster-selector selects none of the clusters`},
		{name: "bad selector", file: "x.yaml", delivery: declared.Delivery{Selector: "env in prod"}, err: "certsync.io/cluster-selector"},
		{name: "folder rule", file: "platform/ingress/tls.yaml", want: []string{"prod-eu", "prod-us", "staging"}},
		{name: "glob rule", file: "apps/shop/prod.yaml", want: []string{"prod-eu", "prod-us"}},
		{name: "glob does not cross folders", file: "apps/shop/eu/prod.yaml", err: "delivered to no cluster"},
		{name: "exact rule", file: "apps/shop/staging.yaml", want: []string{"staging"}},
		{name: "flux layout", file: "clusters/staging/certs/web.yaml", want: []string{"staging"}},
		{name: "flux layout, undeclared cluster", file: "clusters/dev/web.yaml", err: "delivered to no cluster"},
		{name: "nothing says", file: "misc/web.yaml",
			err: "misc/web.yaml:3:1: Certificate shop/web: delivered to no cluster: annotate it with certsync.io/clusters, add a delivery rule for misc/web.yaml to certsync.yaml, or declare it under clusters/<cluster>/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := declared.Certificate{Namespace: "shop", Name: "web", Source: declared.Source{File: tt.file, Line: 3, Column: 1}, Delivery: tt.delivery}
			got, err := s.Targets(&c, "default")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestDeliveryRuleIsNamed checks that a refusal by a delivery rule names
// the rule's place in certsync.yaml: its list item, line 7 column 3.
func TestDeliveryRuleIsNamed(t *testing.T) {
	s, err := Parse([]byte("apiVersion: certsync.io/v1alpha1\nkind: Settings\nclusters:\n- name: a\n  labels: {env: staging}\ndelivery:\n- paths: [apps/]\n  clusterSelector: env=prod\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := declared.Certificate{Namespace: "shop", Name: "web", Source: declared.Source{File: "apps/web.yaml", Line: 1, Column: 1}}
	_, err = s.Targets(&c, "default")
	const want = `apps/web.yaml:1:1: Certificate shop/web: delivered to no cluster: certsync.yaml:7:3 (delivery rule) selects none of the clusters in certsync.yaml ("env=prod")`
	if !errors.Is(err, ErrNoCluster) || err.Error() != want {
		t.Fatalf("err %v\nwant %s", err, want)
	}
}

func TestNoSettingsIsOneCluster(t *testing.T) {
	var s Settings
	c := declared.Certificate{Namespace: "shop", Name: "web", Source: declared.Source{File: "clusters/prod/web.yaml"}}
	if got, err := s.Targets(&c, "edge"); err != nil || !slices.Equal(got, []string{"edge"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	c.Delivery = declared.Delivery{Clusters: []string{"prod"}}
	if _, err := s.Targets(&c, "edge"); err == nil || !strings.Contains(err.Error(), "no clusters are declared") {
		t.Fatalf("err %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	head := "apiVersion: certsync.io/v1alpha1\nkind: Settings\n"
	// Positions are line:column (1-based, bytes): at the value an error is
	// about, at the list item when it is about the whole item, at the
	// document's start for the document. yaml.v3's own errors name a line
	// at most.
	tests := []struct{ name, content, err string }{
		{"malformed", "clusters: [", "certsync.yaml: malformed YAML"},
		{"wrong kind", "apiVersion: v1\nkind: ConfigMap\n", "certsync.yaml:1:1: want apiVersion certsync.io/v1alpha1 and kind Settings"},
		{"unknown field", head + "clusters:\n- name: a\n  lables: {}\n", "field lables not found"},
		{"bad name", head + "clusters:\n- name: ../etc\n", `certsync.yaml:4:9: clusters[0].name "../etc" is not a valid cluster name`},
		{"all is reserved", head + "clusters:\n- name: all\n", `certsync.yaml:4:9: clusters[0].name "all" is not a valid cluster name: "all" stands for every cluster`},
		{"twice", head + "clusters:\n- name: a\n- name: a\n", `certsync.yaml:5:3: clusters[1]: cluster "a" is declared twice`},
		{"bad label", head + "clusters:\n- name: a\n  labels: {\"env/\": x}\n", `certsync.yaml:5:12: clusters[0].labels: "env/"`},
		{"bad label value", head + "clusters:\n- name: a\n  labels: {env: \"-x-\"}\n", `certsync.yaml:5:17: clusters[0].labels["env"]: "-x-"`},
		{"rule without paths", head + "clusters:\n- name: a\ndelivery:\n- clusters: [a]\n", "certsync.yaml:6:3: delivery[0].paths: is required"},
		{"rule escapes", head + "clusters:\n- name: a\ndelivery:\n- paths: [../x]\n  clusters: [a]\n", `certsync.yaml:6:11: delivery[0].paths: "../x" is not a repository folder or glob`},
		{"second path escapes", head + "clusters:\n- name: a\ndelivery:\n- paths: [x/, /etc]\n  clusters: [a]\n", `certsync.yaml:6:15: delivery[0].paths: "/etc" is not a repository folder or glob`},
		{"rule unknown cluster", head + "clusters:\n- name: a\ndelivery:\n- paths: [x/]\n  clusters: [b]\n", `certsync.yaml:7:14: delivery[0].clusters: cluster "b" is not declared`},
		{"rule says nothing", head + "clusters:\n- name: a\ndelivery:\n- paths: [x/]\n", "certsync.yaml:6:3: delivery[0]: say which clusters"},
		{"rule both", head + "clusters:\n- name: a\ndelivery:\n- paths: [x/]\n  clusters: [a]\n  clusterSelector: env=a\n", "certsync.yaml:6:3: delivery[0]: clusters and clusterSelector cannot be combined"},
		{"bad selector", head + "clusters:\n- name: a\ndelivery:\n- paths: [x/]\n  clusterSelector: \"env in a\"\n", "certsync.yaml:7:20: delivery[0].clusterSelector"},
		{"rules without clusters", head + "delivery:\n- paths: [x/]\n  clusterSelector: env=a\n", "delivery rules need clusters"},
		{"output folder without the cluster", head + "output:\n  secrets: certs/all\n", `certsync.yaml:4:12: output.secrets: "certs/all" must contain {cluster} once`},
		{"output folder escapes", head + "output:\n  secrets: ../{cluster}\n", `certsync.yaml:4:12: output.secrets: "../{cluster}" is not a clean path`},
		{"output folder misspelt", head + "output:\n  secret: x/{cluster}\n", "field secret not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.content))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	s, err := Parse([]byte(`apiVersion: certsync.io/v1alpha1
kind: Settings
policy:
- paths: [apps/shop/]
  names: [shop.example.com, "*.shop.example.com", .internal.example.com]
  issuers: [ClusterIssuer/letsencrypt, Issuer/shop/private]
  namespaces: [shop]
- paths: [platform/]
`))
	if err != nil {
		t.Fatal(err)
	}
	cert := func(file, ns, kind, issuer string, names ...string) *declared.Certificate {
		return &declared.Certificate{Namespace: ns, Name: "web", Source: declared.Source{File: file, Line: 2, Column: 1}, DNSNames: names,
			IssuerRef: declared.IssuerRef{Kind: kind, Name: issuer}}
	}
	tests := []struct {
		name string
		c    *declared.Certificate
		err  string
	}{
		{"allowed", cert("apps/shop/web.yaml", "shop", "ClusterIssuer", "letsencrypt", "shop.example.com", "*.shop.example.com", "www.shop.example.com", "a.b.internal.example.com"), ""},
		{"namespaced issuer", cert("apps/shop/web.yaml", "shop", "Issuer", "private", "shop.example.com"), ""},
		{"rule without lists allows anything", cert("platform/x.yaml", "kube-system", "ClusterIssuer", "other", "anything.example.org"), ""},
		{"name outside", cert("apps/shop/web.yaml", "shop", "ClusterIssuer", "letsencrypt", "shop.example.com", "bank.example.com"),
			"apps/shop/web.yaml:2:1: Certificate shop/web: refused by policy: certsync.yaml:4:3 (policy rule) does not allow the name bank.example.com"},
		{"wildcard label is one label", cert("apps/shop/web.yaml", "shop", "ClusterIssuer", "letsencrypt", "a.b.shop.example.com"), "does not allow the name a.b.shop.example.com"},
		{"suffix needs a subdomain", cert("apps/shop/web.yaml", "shop", "ClusterIssuer", "letsencrypt", "internal.example.com"), "does not allow the name internal.example.com"},
		{"issuer", cert("apps/shop/web.yaml", "shop", "ClusterIssuer", "staging", "shop.example.com"), "does not allow issuer ClusterIssuer/staging"},
		{"namespace", cert("apps/shop/web.yaml", "bank", "ClusterIssuer", "letsencrypt", "shop.example.com"), "does not allow namespace bank (allowed: shop)"},
		{"uncovered path", cert("apps/bank/web.yaml", "bank", "ClusterIssuer", "letsencrypt", "bank.example.com"), "no policy rule in certsync.yaml covers apps/bank/web.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Allow(tt.c)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
		})
	}
	// Each refusal points at the list item it is about.
	for _, bad := range []struct{ field, at string }{
		{`names: ["*"]`, "5:11: policy[0].names"},
		{"names: [a.*.example.com]", "5:11: policy[0].names"},
		{"names: [Shop.example.com]", "5:11: policy[0].names"},
		{`names: [ok.example.com, "*"]`, `5:27: policy[0].names: "*"`},
		{"issuers: [letsencrypt]", "5:13: policy[0].issuers"},
		{"issuers: [Issuer/le]", "5:13: policy[0].issuers"},
		{"paths: [../x]", "4:11: policy[0].paths"},
	} {
		content := "apiVersion: certsync.io/v1alpha1\nkind: Settings\npolicy:\n- paths: [apps/]\n  " + bad.field + "\n"
		if strings.HasPrefix(bad.field, "paths") {
			content = "apiVersion: certsync.io/v1alpha1\nkind: Settings\npolicy:\n- " + bad.field + "\n"
		}
		if _, err := Parse([]byte(content)); err == nil || !strings.HasPrefix(err.Error(), "certsync.yaml:"+bad.at) {
			t.Errorf("%s: err %v, want certsync.yaml:%s", bad.field, err, bad.at)
		}
	}
}

func TestOutputFolder(t *testing.T) {
	s, err := Parse([]byte("apiVersion: certsync.io/v1alpha1\nkind: Settings\noutput:\n  secrets: clusters/{cluster}/certificates\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Layout.SecretPath("prod", "shop", "web-tls"); got != "clusters/prod/certificates/shop/web-tls.yaml" {
		t.Fatalf("SecretPath = %q", got)
	}
	var none Settings
	if got := none.Layout.SecretPath("prod", "shop", "web-tls"); got != "secrets/prod/shop/web-tls.yaml" {
		t.Fatalf("default SecretPath = %q", got)
	}
}
