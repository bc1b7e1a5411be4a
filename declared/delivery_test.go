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
	// The annotations are on line 26; a problem with a value points at the
	// value (column 27, or 35 after certsync.io/cluster-selector), one with
	// the annotation itself at its key (column 5).
	tests := []struct {
		name, annotations string
		want              Delivery
		problem           string // "" when accepted
	}{
		{name: "none", annotations: "    example.com/team: a\n"},
		{name: "clusters", annotations: "    certsync.io/clusters: \"prod-eu, prod-us\"\n",
			want: Delivery{Clusters: []string{"prod-eu", "prod-us"}, Line: 26, Column: 27}},
		{name: "all", annotations: "    certsync.io/clusters: all\n", want: Delivery{Clusters: []string{"all"}, Line: 26, Column: 27}},
		{name: "selector", annotations: "    certsync.io/cluster-selector: env=prod\n", want: Delivery{Selector: "env=prod", Line: 26, Column: 35}},
		{name: "all with names", annotations: "    certsync.io/clusters: all,prod\n",
			problem: `c.yaml:26:27: Certificate shop/web: metadata.annotations["certsync.io/clusters"]: "all" cannot be combined with cluster names`},
		{name: "bad name", annotations: "    certsync.io/clusters: Prod_EU\n",
			problem: `c.yaml:26:27: Certificate shop/web: metadata.annotations["certsync.io/clusters"]: "Prod_EU" is not a valid cluster name`},
		{name: "path in name", annotations: "    certsync.io/clusters: ../x\n",
			problem: `"../x" is not a valid cluster name`},
		{name: "empty name", annotations: "    certsync.io/clusters: a,,b\n", problem: "lists an empty cluster name"},
		{name: "empty selector", annotations: "    certsync.io/cluster-selector: \"\"\n", problem: `c.yaml:26:35: Certificate shop/web: metadata.annotations["certsync.io/cluster-selector"]: is empty; write a label selector`},
		{name: "both", annotations: "    certsync.io/clusters: a\n    certsync.io/cluster-selector: env=prod\n",
			problem: `c.yaml:27:5: Certificate shop/web: metadata.annotations["certsync.io/cluster-selector"]: cannot be combined with certsync.io/clusters`},
		{name: "misspelt", annotations: "    certsync.io/cluster: a\n",
			problem: `c.yaml:26:5: Certificate shop/web: metadata.annotations["certsync.io/cluster"]: is not a certsync annotation`},
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
			if !slices.Equal(got.Clusters, tt.want.Clusters) || got.Selector != tt.want.Selector || got.Line != tt.want.Line || got.Column != tt.want.Column {
				t.Fatalf("delivery %+v, want %+v", got, tt.want)
			}
		})
	}
}
