package declared

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
)

// TemplateHash is a short digest of spec.secretTemplate in two parts,
// "<labels>.<annotations>": each the first 8 bytes (hex) of a SHA-256
// over that map's sorted key/value pairs, or empty when the map is. The
// committed Secret records it, so a later pass sees a changed template
// without decrypting anything, and the two parts let the plan say which
// of the two changed. It is "" when the template has neither, so a Secret
// rendered without one records nothing and an upgrade changes no file.
func (c *Certificate) TemplateHash() string {
	digest := func(m map[string]string) string {
		if len(m) == 0 {
			return ""
		}
		h := sha256.New()
		for _, k := range slices.Sorted(maps.Keys(m)) {
			// NUL cannot occur in a label or annotation key, so pairs
			// cannot run into each other.
			h.Write([]byte(k + "\x00" + m[k] + "\x00"))
		}
		return hex.EncodeToString(h.Sum(nil)[:8])
	}
	labels, annotations := digest(c.SecretTemplate.Labels), digest(c.SecretTemplate.Annotations)
	if labels == "" && annotations == "" {
		return ""
	}
	return labels + "." + annotations
}
