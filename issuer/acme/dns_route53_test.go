package acme

import (
	"fmt"
	"testing"

	"github.com/certsync/certsync/internal/testbed/dnsapi"
)

// route53: lego's provider, through the AWS SDK client certsync builds for
// it, against the Route 53 emulator, which checks each request's
// Signature V4: the access key ID from the block (or its Secret) and the
// secret access key from its Secret. With hostedZoneID and without (the
// zone is then found with ListHostedZonesByName); an unknown key ID and a
// wrong secret each fail the order saying what to check.
func TestBlockRoute53(t *testing.T) {
	t.Parallel()
	const keyID, secret = "AKIACERTSYNCTEST0001", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCERTSYNC01"
	n := dnsapi.Start(t)
	em := dnsapi.StartRoute53(n, ca, keyID, secret, "r53.test")
	secrets := fakeSecrets{
		"team-a/aws/secret-access-key": secret + "\n",
		"team-a/aws/access-key-id":     keyID,
		"team-b/aws/secret-access-key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY99",
		"team-c/aws/secret-access-key": secret,
	}
	never := []string{secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY99"}
	for _, c := range []blockCase{
		{name: "access key ID in the block, hosted zone ID given", ns: "team-a",
			block: fmt.Sprintf(`route53: {region: eu-west-1, hostedZoneID: %s, accessKeyID: %s, secretAccessKeySecretRef: {name: aws, key: secret-access-key}}`, dnsapi.HostedZoneID("r53.test"), keyID)},
		{name: "both keys from Secrets, hosted zone looked up", ns: "team-a",
			block: `route53: {region: eu-west-1, accessKeyIDSecretRef: {name: aws, key: access-key-id}, secretAccessKeySecretRef: {name: aws, key: secret-access-key}}`},
		{name: "wrong secret access key", ns: "team-b",
			block:   fmt.Sprintf(`route53: {region: eu-west-1, accessKeyID: %s, secretAccessKeySecretRef: {name: aws, key: secret-access-key}}`, keyID),
			refused: "HTTP 403 from route53.amazonaws.com", check: []string{`secretAccessKeySecretRef (Secret team-b/aws, key "secret-access-key")`, "SignatureDoesNotMatch", "also check the block's accessKeyID, region"}},
		{name: "unknown access key ID", ns: "team-c",
			block:   `route53: {region: eu-west-1, accessKeyID: AKIAUNKNOWN000000000, secretAccessKeySecretRef: {name: aws, key: secret-access-key}}`,
			refused: "HTTP 403 from route53.amazonaws.com", check: []string{"InvalidClientTokenId", "also check the block's accessKeyID"}},
	} {
		c.secrets, c.never = secrets, never
		t.Run(c.name, func(t *testing.T) { runBlockCase(t, n, em, "r53.test", c) })
	}
}
