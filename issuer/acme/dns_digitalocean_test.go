package acme

import (
	"testing"

	"github.com/certsync/certsync/internal/testbed/dnsapi"
)

// digitalocean: lego's provider against the DigitalOcean API emulator,
// issuing a wildcard and its apex with the personal access token of
// tokenSecretRef; a wrong token fails the order saying which Secret to
// check.
func TestBlockDigitalOcean(t *testing.T) {
	t.Parallel()
	const token = "dop_v1_3f9a1c7e5b2d8046aa91"
	n := dnsapi.Start(t)
	em := dnsapi.StartDigitalOcean(n, ca, token, "do.test")
	secrets := fakeSecrets{
		"team-a/digitalocean/access-token": token,
		"team-b/digitalocean/access-token": "dop_v1_expired_77",
	}
	block := `digitalocean: {tokenSecretRef: {name: digitalocean, key: access-token}}`
	for _, c := range []blockCase{
		{name: "access token", ns: "team-a", block: block},
		{name: "expired token", ns: "team-b", block: block,
			refused: "HTTP 401 from api.digitalocean.com", check: []string{`tokenSecretRef (Secret team-b/digitalocean, key "access-token")`, "Unable to authenticate you"}},
	} {
		c.secrets, c.never = secrets, []string{token, "dop_v1_expired_77"}
		t.Run(c.name, func(t *testing.T) { runBlockCase(t, n, em, "do.test", c) })
	}
}
