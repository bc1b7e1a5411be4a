package render_test

import (
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/certsync/certsync/render"
)

// TestFromDocumentReadsAsParse: a manifest decoded into values gives the
// Secret Parse gives from its text, on the direct way (the fields certsync
// writes) and through Parse (anything else), and is refused where Parse
// refuses it — without quoting the data.
func TestFromDocumentReadsAsParse(t *testing.T) {
	const secret = `apiVersion: v1
kind: Secret
metadata:
  name: web-tls
  namespace: shop
  labels: {app: web}
  annotations: {cert-manager.io/common-name: web.example.org}
type: kubernetes.io/tls
data:
  tls.crt: Q0VSVElGSUNBVEU=
  tls.key: S0VZ
`
	tests := []struct {
		name, manifest string
		wantErr        string
	}{
		{"as certsync writes it", secret, ""},
		{"stringData", secret + "stringData: {password: s3cret}\n", ""},
		{"a field certsync does not write", secret + "immutable: true\n", ""},
		{"a metadata field certsync does not write", strings.Replace(secret, "  name: web-tls\n", "  name: web-tls\n  finalizers: [x]\n", 1), ""},
		{"data with a line break", strings.Replace(secret, "S0VZ", "|\n    S0\n    VZ", 1), ""},
		{"unknown field", secret + "spec: {}\n", "malformed manifest"},
		{"label written as a number", strings.Replace(secret, "{app: web}", "{app: 1}", 1), ""},
		{"label a map", strings.Replace(secret, "{app: web}", "{app: {x: y}}", 1), "malformed manifest"},
		{"data not base64", strings.Replace(secret, "S0VZ", "S0VZ!!!", 1), "malformed manifest"},
		{"not a Secret", strings.Replace(secret, "kind: Secret", "kind: ConfigMap", 1), `kind is "ConfigMap"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(tt.manifest), &doc); err != nil {
				t.Fatal(err)
			}
			got, err := render.FromDocument(doc)
			want, parseErr := render.Parse([]byte(tt.manifest))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || parseErr == nil {
					t.Fatalf("FromDocument: %v, Parse: %v; want both to fail with %q", err, parseErr, tt.wantErr)
				}
				if strings.Contains(err.Error(), "S0VZ") {
					t.Fatalf("error quotes the data: %v", err)
				}
				return
			}
			if err != nil || parseErr != nil {
				t.Fatalf("FromDocument: %v, Parse: %v", err, parseErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("FromDocument:\n%#v\nParse:\n%#v", got, want)
			}
		})
	}
}
