package committed

import (
	"encoding/csv"
	"slices"
	"strings"
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

// splitList skips the csv.Reader for lists with no quote and no line
// break: for those it must read exactly what the reader reads.
func TestSplitListPlainAsCSV(t *testing.T) {
	for _, s := range []string{
		"a", "a,b", "a,,b", ",", "a,", ",a", "a, b", " a ,b ", "\t", "é,ß,日本",
		"*.example.com,example.com", "10.0.0.1,2001:db8::1", "spiffe://x/y?a=1", "x@example.com",
	} {
		want, err := csv.NewReader(strings.NewReader(s)).Read()
		if err != nil {
			t.Fatalf("csv %q: %v", s, err)
		}
		if got := splitList(s); !slices.Equal(got, want) {
			t.Errorf("splitList(%q) = %q, csv reads %q", s, got, want)
		}
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
