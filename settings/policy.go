package settings

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/certsync/certsync/declared"
)

// ErrPolicy is wrapped when certsync.yaml's policy refuses a certificate.
var ErrPolicy = errors.New("refused by policy")

// Allow checks c against the policy rules (nil when there are none). The
// error names the file and line of c and the rule that refused it.
func (s Settings) Allow(c *declared.Certificate) error {
	if len(s.Policy) == 0 {
		return nil
	}
	var refusals []string
	for _, r := range s.Policy {
		if !pathsMatch(r.Paths, c.Source.File) {
			continue
		}
		why := r.refuses(c)
		if why == "" {
			return nil
		}
		refusals = append(refusals, fmt.Sprintf("%s (policy rule) %s", declared.Source{File: Path, Line: r.Line, Column: r.Column}, why))
	}
	if len(refusals) == 0 {
		return fmt.Errorf("%s: Certificate %s: %w: no policy rule in %s covers %s, so it may request no certificate; add a rule whose paths match it", c.Source, c.Key(), ErrPolicy, Path, c.Source.File)
	}
	return fmt.Errorf("%s: Certificate %s: %w: %s", c.Source, c.Key(), ErrPolicy, strings.Join(refusals, "; "))
}

// refuses says why the rule does not allow c ("" when it does).
func (r PolicyRule) refuses(c *declared.Certificate) string {
	if len(r.Namespaces) > 0 && !slices.Contains(r.Namespaces, c.Namespace) {
		return fmt.Sprintf("does not allow namespace %s (allowed: %s)", c.Namespace, strings.Join(r.Namespaces, ", "))
	}
	if len(r.Issuers) > 0 {
		ref := c.IssuerRef.Kind + "/" + c.IssuerRef.Name
		if c.IssuerRef.Kind == declared.KindIssuer {
			ref = declared.KindIssuer + "/" + c.Namespace + "/" + c.IssuerRef.Name
		}
		if !slices.Contains(r.Issuers, ref) {
			return fmt.Sprintf("does not allow issuer %s (allowed: %s)", ref, strings.Join(r.Issuers, ", "))
		}
	}
	if len(r.Names) > 0 {
		names := c.DNSNames
		if c.CommonName != "" && !slices.Contains(names, c.CommonName) {
			names = append(slices.Clone(names), c.CommonName)
		}
		for _, n := range names {
			if !slices.ContainsFunc(r.Names, func(p string) bool { return nameAllowed(p, n) }) {
				return fmt.Sprintf("does not allow the name %s (allowed: %s)", n, strings.Join(r.Names, ", "))
			}
		}
	}
	return ""
}

// nameAllowed matches a requested name against one policy pattern:
// "a.example.com" exactly; "*.example.com" one label under example.com
// (and the wildcard itself); ".example.com" any depth under example.com.
func nameAllowed(pattern, name string) bool {
	switch {
	case strings.HasPrefix(pattern, "*."):
		zone := pattern[1:] // ".example.com"
		if name == pattern {
			return true
		}
		label, ok := strings.CutSuffix(name, zone)
		return ok && label != "" && !strings.Contains(label, ".") && label != "*"
	case strings.HasPrefix(pattern, "."):
		return strings.HasSuffix(name, pattern) && len(name) > len(pattern)
	}
	return name == pattern
}

// checkNamePattern validates a policy name pattern.
func checkNamePattern(p string) error {
	bare := strings.TrimPrefix(strings.TrimPrefix(p, "*"), ".")
	if bare == "" || strings.Contains(bare, "*") || strings.ContainsAny(bare, " /") || strings.HasSuffix(bare, ".") || strings.Contains(bare, "..") {
		return errors.New(`write a name (a.example.com), one label under a zone (*.example.com) or any depth under it (.example.com)`)
	}
	if bare != strings.ToLower(bare) {
		return errors.New("names are lower case")
	}
	return nil
}
