package rfc4514

import (
	"encoding/asn1"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string // pkix.RDNSequence.String() of the result, "" for empty
		cn   string
	}{
		{"", "", ""},
		{"   ", "", ""},
		{"CN=web", "CN=web", "web"},
		// ASN.1 order is the string's reversed; String() prints it back.
		{"CN=web,O=Example,C=NL", "CN=web,O=Example,C=NL", "web"},
		// Go prints DC and UID as OIDs; the values are what was written.
		{"CN=web, OU=Platform ,DC=example,DC=com", "CN=web,OU=Platform,0.9.2342.19200300.100.1.25=#13076578616d706c65,0.9.2342.19200300.100.1.25=#1303636f6d", "web"},
		{`O=Example\, Inc.,CN=x`, `O=Example\, Inc.,CN=x`, "x"},
		{`CN=a\2Cb`, `CN=a\,b`, "a,b"},
		{`CN=\ lead`, `CN=\ lead`, " lead"},
		{`CN=trail\ `, `CN=trail\ `, "trail "},
		{"CN=a+UID=b,O=c", "CN=a+0.9.2342.19200300.100.1.1=#130162,O=c", "a"},
		{"2.5.4.3=web;O=x", "CN=web,O=x", "web"},
		{"CN=#0c03776562", "CN=web", "web"},
		{"SERIALNUMBER=42,STREET=Dam 1,ST=NH,L=Ams", "SERIALNUMBER=42,STREET=Dam 1,ST=NH,L=Ams", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			seq, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if _, unknown := Unknown(seq); unknown {
				t.Fatalf("unknown type in %v", seq)
			}
			if got := seq.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := CommonName(seq); got != tt.cn {
				t.Errorf("CommonName = %q, want %q", got, tt.cn)
			}
			if _, err := asn1.Marshal(seq); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
	// The last RDN of the string is the first of the sequence.
	seq, _ := Parse("CN=web,O=Example,C=NL")
	if !seq[0][0].Type.Equal(oidCountry) || !seq[2][0].Type.Equal(oidCommonName) {
		t.Errorf("order %v", seq)
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"CN=web,O":     "DN ended with incomplete type, value pair",
		"web":          "DN ended with incomplete type, value pair",
		",CN=web":      "incomplete type, value pair",
		`CN=we"b`:      "got unescaped character",
		`CN=web\`:      "corrupted escaped character",
		`CN=a\zz`:      "failed to decode escaped character",
		"CN=#zz":       "failed to decode BER encoding",
		"CN=#0c0377":   "failed to decode BER encoding",
		"CN=#0c017700": "trailing bytes",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", in, err, want)
		}
	}
	// Types cert-manager does not know: kept with a nil type, as it does.
	for _, in := range []string{"cn=web", "Cn=web", "EMAIL=a@b", "1.2.x=web"} {
		seq, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if v, unknown := Unknown(seq); !unknown || v == "" {
			t.Errorf("Parse(%q): unknown type not reported: %v", in, seq)
		}
	}
}

func TestParseOID(t *testing.T) {
	for in, ok := range map[string]bool{
		"1.3.6.1.4.1.311.20.2.3": true, "2.5.4.3": true, "2.999": true,
		"": false, "1": false, "1.2.x": false, "1.-2": false, "3.1": false, "1.40": false, "1..2": false, "01.2": false,
	} {
		_, err := ParseOID(in)
		if (err == nil) != ok {
			t.Errorf("ParseOID(%q) = %v, want ok %v", in, err, ok)
		}
	}
}
