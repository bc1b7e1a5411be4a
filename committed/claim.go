package committed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// ClaimsDir holds order claims. Before an agent orders certificates it
// commits and pushes a claim naming them; the push is the lock (Git
// refuses a push that does not descend from the remote head), so of
// several agents planning the same renewals only one orders each. A claim
// lapses at Expires, so an agent that died holding one delays those
// certificates, never loses them; its own restart picks them up at once.
const ClaimsDir = "claims/"

// Claim is one agent's claim on the certificates it is ordering.
type Claim struct {
	Agent   string    `yaml:"agent"`
	Expires time.Time `yaml:"expires"`
	// Certificates are the repository paths of the Secrets being ordered.
	Certificates []string `yaml:"certificates"`
	Path         string   `yaml:"-"`
}

// Holds reports whether the claim keeps other agents from ordering path at
// time now.
func (c Claim) Holds(path string, now time.Time) bool {
	return now.Before(c.Expires) && slices.Contains(c.Certificates, path)
}

var safeAgent = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ClaimPath is where an agent keeps its claim: one file per agent, so
// agents never edit the same file.
func ClaimPath(agent string) string {
	name := strings.ToLower(agent)
	if !safeAgent.MatchString(name) {
		sum := sha256.Sum256([]byte(agent))
		name = "agent-" + hex.EncodeToString(sum[:8])
	}
	return ClaimsDir + name + ".yaml"
}

// MarshalClaim writes a claim file.
func MarshalClaim(c Claim) ([]byte, error) {
	c.Expires = c.Expires.UTC().Truncate(time.Second)
	c.Certificates = slices.Clone(c.Certificates)
	slices.Sort(c.Certificates)
	out, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("claim of %s: %w", c.Agent, err)
	}
	return append([]byte("# Written by certsync while it orders these certificates; other agents leave\n# them alone until it expires. Safe to delete once expired.\n"), out...), nil
}

// ReadClaim reads a claim file.
func ReadClaim(p string, content []byte) (Claim, error) {
	var c Claim
	if err := yaml.Unmarshal(content, &c); err != nil {
		return c, errorf(p, "malformed order claim: %v", err)
	}
	if c.Agent == "" || c.Expires.IsZero() {
		return c, errorf(p, "order claim needs agent and expires")
	}
	c.Path = p
	return c, nil
}
