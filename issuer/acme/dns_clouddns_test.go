package acme

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/certsync/certsync/internal/testbed/dnsapi"
)

// cloudDNS: lego's provider against the Cloud DNS emulator, after
// exchanging a JWT signed with the service account key of
// serviceAccountSecretRef for an access token at the emulated Google token
// endpoint. With hostedZoneName (ManagedZones.Get) and without (the zone is
// found with ManagedZones.List); a key Google does not know fails the order
// saying which Secret to check.
func TestBlockCloudDNS(t *testing.T) {
	t.Parallel()
	key, stale := serviceAccountJSON(t), serviceAccountJSON(t)
	n := dnsapi.Start(t)
	em, err := dnsapi.StartCloudDNS(n, ca, "certsync-p", []byte(key), "gc.test")
	if err != nil {
		t.Fatal(err)
	}
	secrets := fakeSecrets{
		"team-a/gcp/key.json": key,
		"team-b/gcp/key.json": stale, // same account, a key that was deleted
	}
	never := append(privateKeyLines(t, key), privateKeyLines(t, stale)...)
	for _, c := range []blockCase{
		{name: "service account key, managed zone named", ns: "team-a",
			block: `cloudDNS: {project: certsync-p, hostedZoneName: ` + dnsapi.ManagedZoneName("gc.test") + `, serviceAccountSecretRef: {name: gcp, key: key.json}}`},
		{name: "service account key, managed zone looked up", ns: "team-a",
			block: `cloudDNS: {project: certsync-p, serviceAccountSecretRef: {name: gcp, key: key.json}}`},
		{name: "deleted key", ns: "team-b",
			block:   `cloudDNS: {project: certsync-p, serviceAccountSecretRef: {name: gcp, key: key.json}}`,
			refused: "the token endpoint refused the key: invalid_grant", check: []string{`serviceAccountSecretRef (Secret team-b/gcp, key "key.json")`, "also check the block's project"}},
	} {
		c.secrets, c.never = secrets, never
		t.Run(c.name, func(t *testing.T) { runBlockCase(t, n, em, "gc.test", c) })
	}
}

// privateKeyLines are the base64 lines of a service account key file's
// private key: none may appear in an error or a log.
func privateKeyLines(t *testing.T, keyJSON string) []string {
	var sa struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal([]byte(keyJSON), &sa); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(sa.PrivateKey, "\n") {
		if len(l) > 32 && !strings.HasPrefix(l, "-----") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		t.Fatal("no private key lines")
	}
	return lines
}
