package declared

import (
	"slices"
	"strings"
	"testing"
)

func TestDeliveryAnnotations(t *testing.T) {
	withAnnotations := func(lines string) string {
		return strings.Replace(issuerYAML+"---\n"+cert("web", "shop", "web-tls", "  dnsNames: [web.example.com]\n"),
			"  namespace: shop\n", "  namespace: shop\n  annotations:\n"+lines, 1)
	}
	tests := []struct {
		name, annotations string
		want              Delivery
		problem           string // "" when accepted
	}{
		{name: "none", annotations: "    example.com/team: a\n"},
		{name: "clusters", annotations: "    certsync.io/clusters: \"prod-eu, prod-us\"\n",
			want: Delivery{Clusters: []string{"prod-eu", "prod-us"}, Line: 26}},
		{name: "all", annotations: "    certsync.io/clusters: all\n", want: Delivery{Clusters: []string{"all"}, Line: 26}},
		{name: "selector", annotations: "    certsync.io/cluster-selector: env=prod\n", want: Delivery{Selector: "env=prod", Line: 26}},
		{name: "all with names", annotations: "    certsync.io/clusters: all,prod\n",
			problem: `c.yaml:26: Certificate shop/web: metadata.annotations["certsync.io/clusters"]: "all" cannot be combined with cluster names`},
		{name: "bad name", annotations: "    certsync.io/clusters: Prod_EU\n",
			problem: `"Prod_EU" is not a valid cluster name`},
		{name: "path in name", annotations: "    certsync.io/clusters: ../x\n",
			problem: `"../x" is not a valid cluster name`},
		{name: "empty name", annotations: "    certsync.io/clusters: a,,b\n", problem: "lists an empty cluster name"},
		{name: "empty selector", annotations: "    certsync.io/cluster-selector: \"\"\n", problem: "is empty; write a label selector"},
		{name: "both", annotations: "    certsync.io/clusters: a\n    certsync.io/cluster-selector: env=prod\n",
			problem: "cannot be combined with certsync.io/clusters"},
		{name: "misspelt", annotations: "    certsync.io/cluster: a\n",
			problem: `c.yaml:26: Certificate shop/web: metadata.annotations["certsync.io/cluster"]: is not a certsync annotation`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Parse([]File{{Path: "c.yaml", Content: []byte(withAnnotations(tt.annotations))}})
			if tt.problem != "" {
				if len(s.Problems) != 1 || !strings.Contains(s.Problems[0].Error(), tt.problem) {
					t.Fatalf("problems %v, want one containing %q", s.Problems, tt.problem)
				}
				return
			}
			if len(s.Problems) > 0 || len(s.Certificates) != 1 {
				t.Fatalf("problems %v", s.Problems)
			}
			got := s.Certificates[0].Delivery
			if !slices.Equal(got.Clusters, tt.want.Clusters) || got.Selector != tt.want.Selector || got.Line != tt.want.Line {
				t.Fatalf("delivery %+v, want %+v", got, tt.want)
			}
		})
	}
}
