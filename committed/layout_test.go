package committed_test

import (
	"strings"
	"testing"

	"github.com/certsync/certsync/committed"
)

func TestLayout(t *testing.T) {
	tests := []struct {
		folder, wantErr string
		// path → "cluster ns name moved", or "" for not a Secret path
		paths map[string]string
	}{
		{folder: "", paths: map[string]string{
			"secrets/prod/shop/web-tls.yaml":      "prod shop web-tls false",
			"clusters/prod/certs/shop/web.yaml":   "",
			"secrets/prod/shop/../web-tls.yaml":   "",
			"secrets/prod/shop/web-tls/more.yaml": "",
		}},
		{folder: "clusters/{cluster}/certificates", paths: map[string]string{
			"clusters/prod/certificates/shop/web-tls.yaml": "prod shop web-tls false",
			"secrets/prod/shop/web-tls.yaml":               "prod shop web-tls true",
			"clusters/prod/shop/web-tls.yaml":              "",
			"clusters/prod/certificates/web-tls.yaml":      "",
			"clusters/../certificates/shop/x.yaml":         "",
			"clusters/prod/certificates/shop/x.yml":        "",
		}},
		{folder: "{cluster}/tls/", paths: map[string]string{
			"eu/tls/shop/web-tls.yaml": "eu shop web-tls false",
			"eu/web/shop/web-tls.yaml": "",
		}},
		{folder: "certs/{cluster}", paths: map[string]string{
			"certs/eu/shop/web-tls.yaml": "eu shop web-tls false",
		}},
		{folder: "clusters/prod/certificates", wantErr: "must contain {cluster} once"},
		{folder: "clusters/{cluster}/{cluster}", wantErr: "must contain {cluster} once"},
		{folder: "clusters/x{cluster}", wantErr: "whole folder name"},
		{folder: "/abs/{cluster}", wantErr: "not a clean path"},
		{folder: "../{cluster}", wantErr: "not a clean path"},
		{folder: "a//{cluster}", wantErr: "not a clean path"},
		{folder: "clusters/*/{cluster}", wantErr: "no glob characters"},
		{folder: "accounts/{cluster}", wantErr: "inside accounts/"},
		{folder: "secrets/by-cluster/{cluster}", wantErr: "inside secrets/"},
	}
	for _, tt := range tests {
		t.Run(tt.folder, func(t *testing.T) {
			l, err := committed.NewLayout(tt.folder)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range tt.paths {
				cluster, ns, name, moved, ok := l.ParseSecretPath(p)
				got := ""
				if ok {
					got = strings.Join([]string{cluster, ns, name, map[bool]string{true: "true", false: "false"}[moved]}, " ")
				}
				if got != want {
					t.Errorf("ParseSecretPath(%q) = %q, want %q", p, got, want)
				}
				if ok && !moved && l.SecretPath(cluster, ns, name) != p {
					t.Errorf("SecretPath(%s, %s, %s) = %q, want %q", cluster, ns, name, l.SecretPath(cluster, ns, name), p)
				}
				// Anything under secrets/ stays certsync's, parsed or not.
				if want := ok || strings.HasPrefix(p, committed.SecretsDir); l.IsOutput(p) != want {
					t.Errorf("IsOutput(%q) = %v, want %v", p, !want, want)
				}
			}
		})
	}
}
