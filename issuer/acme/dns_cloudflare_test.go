package acme

import (
	"testing"

	"github.com/certsync/certsync/internal/testbed/dnsapi"
)

// cloudflare: lego's provider against the Cloudflare API emulator, with an
// API token and with the global API key, issuing a wildcard and its apex;
// a revoked token fails the order saying which Secret to check.
func TestBlockCloudflare(t *testing.T) {
	t.Parallel()
	const token, email, key = "cf-token-4Xq9LmN2pR7sT1vW", "ops@example.test", "cf-global-key-8Hj3Kd5"
	n := dnsapi.Start(t)
	em := dnsapi.StartCloudflare(n, ca, dnsapi.CloudflareOptions{Zones: []string{"cf.test"}, Token: token, Email: email, Key: key})
	secrets := fakeSecrets{
		"team-a/cloudflare/api-token": token + "\n",
		"team-a/cloudflare/api-key":   key,
		"team-b/cloudflare/api-token": "cf-token-revoked-0000",
	}
	never := []string{token, key, "cf-token-revoked-0000"}
	for _, c := range []blockCase{
		{name: "API token", ns: "team-a", block: `cloudflare: {apiTokenSecretRef: {name: cloudflare, key: api-token}}`},
		{name: "global API key", ns: "team-a", block: `cloudflare: {email: ops@example.test, apiKeySecretRef: {name: cloudflare, key: api-key}}`},
		{name: "revoked token", ns: "team-b", block: `cloudflare: {apiTokenSecretRef: {name: cloudflare, key: api-token}}`,
			refused: "HTTP 403 from api.cloudflare.com", check: []string{`apiTokenSecretRef (Secret team-b/cloudflare, key "api-token")`, "Authentication error"}},
	} {
		c.secrets, c.never = secrets, never
		t.Run(c.name, func(t *testing.T) { runBlockCase(t, n, em, "cf.test", c) })
	}
}
