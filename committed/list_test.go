package committed

import (
	"slices"
	"testing"
)

// Lists in cert-manager's annotations are one CSV record: names stay a
// plain comma-separated list, values with commas are quoted.
func TestJoinListSplitList(t *testing.T) {
	tests := []struct {
		list   []string
		joined string
	}{
		{nil, ""},
		{[]string{"example.com", "*.example.com"}, "example.com,*.example.com"},
		{[]string{"10.0.0.1", "2001:db8::1"}, "10.0.0.1,2001:db8::1"},
		{[]string{"Example, Inc.", "Labs"}, `"Example, Inc.",Labs`},
		{[]string{`say "hi"`}, `"say ""hi"""`},
	}
	for _, tt := range tests {
		if got := JoinList(tt.list); got != tt.joined {
			t.Errorf("JoinList(%q) = %q, want %q", tt.list, got, tt.joined)
		}
		if got := splitList(tt.joined); !slices.Equal(got, tt.list) {
			t.Errorf("splitList(%q) = %q, want %q", tt.joined, got, tt.list)
		}
	}
	// Written by hand, not CSV: split at the commas.
	if got := splitList(`a"b,c`); !slices.Equal(got, []string{`a"b`, "c"}) {
		t.Errorf("splitList of a stray quote = %q", got)
	}
}

func TestFromAnnotationsFields(t *testing.T) {
	c := FromAnnotations(map[string]string{
		AnnotationCMIPSANs: "10.0.0.1,2001:db8::1", AnnotationCMURISANs: "spiffe://example.com/web",
		AnnotationCMEmailSANs: "ops@example.com", AnnotationOutputsHash: "0123456789abcdef",
	})
	if len(c.IPAddresses) != 2 || len(c.URIs) != 1 || len(c.EmailAddresses) != 1 || c.OutputsHash != "0123456789abcdef" {
		t.Errorf("record %+v", c)
	}
	// A Secret written before these annotations existed reads as none.
	if c := FromAnnotations(map[string]string{AnnotationCMIPSANs: "", AnnotationCMURISANs: ""}); c.IPAddresses != nil || c.URIs != nil || c.OutputsHash != "" {
		t.Errorf("empty annotations read as %+v", c)
	}
}
