package declared

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// crossCheck applies the rules that need the whole repository: a
// Certificate must name an issuer that exists, names and secretNames must be
// unique per namespace, and ACME's own rules (commonName among the
// dnsNames, at most MaxNamesProfile names under a limited profile). A
// Certificate that breaks one is moved to Problems; the others stay. Then
// the Secrets are checked (checkSecrets).
func (s *Set) crossCheck() {
	issuers := map[IssuerRef]*Issuer{}
	var keptIssuers []Issuer
	for i := range s.Issuers {
		iss := &s.Issuers[i]
		ref := iss.Ref()
		if prev, dup := issuers[issuerKey(ref, iss.Namespace)]; dup {
			s.Problems = append(s.Problems, Problem{Source: iss.Source, Object: iss.Key(), Err: fmt.Errorf("declared twice (also at %s)", prev.Source)})
			continue
		}
		issuers[issuerKey(ref, iss.Namespace)] = iss
		keptIssuers = append(keptIssuers, *iss)
	}
	s.Issuers = keptIssuers

	byName := make(map[string][]int, len(s.Certificates))
	bySecret := make(map[string][]int, len(s.Certificates))
	for i, c := range s.Certificates {
		byName[c.Key()] = append(byName[c.Key()], i)
		bySecret[c.Namespace+"/"+c.SecretName] = append(bySecret[c.Namespace+"/"+c.SecretName], i)
	}
	bad := map[int]error{}
	for key, idx := range byName {
		if len(idx) > 1 {
			for _, i := range idx {
				bad[i] = fmt.Errorf("Certificate %s is declared %d times (%s)", key, len(idx), s.sources(idx))
			}
		}
	}
	for key, idx := range bySecret {
		if len(idx) > 1 {
			for _, i := range idx {
				if bad[i] == nil {
					bad[i] = fmt.Errorf("spec.secretName %s is used by %d Certificates (%s): each needs its own Secret", key, len(idx), s.sources(idx))
				}
			}
		}
	}
	// Filtered in place: Combine made this slice, and each element is
	// read before any later one is written.
	kept := s.Certificates[:0]
	for i, c := range s.Certificates {
		if bad[i] == nil {
			bad[i] = checkIssuer(&c, issuers)
		}
		if bad[i] != nil {
			s.Problems = append(s.Problems, Problem{Source: c.Source, Object: "Certificate " + c.Key(), Err: bad[i]})
			continue
		}
		kept = append(kept, c)
	}
	s.Certificates = kept
	s.checkSecrets()
	// By file, then by position as numbers ("a.yaml:9" before "a.yaml:10").
	sort.SliceStable(s.Problems, func(i, j int) bool {
		return s.Problems[i].Source.before(s.Problems[j].Source)
	})
}

func (s *Set) sources(idx []int) string {
	var out []string
	for _, i := range idx {
		out = append(out, s.Certificates[i].Source.String())
	}
	return strings.Join(out, ", ")
}

// issuerKey identifies an issuer as a Certificate in namespace sees it:
// Issuers are namespaced, ClusterIssuers are not.
func issuerKey(ref IssuerRef, namespace string) IssuerRef {
	if ref.Kind == KindIssuer {
		ref.Name = namespace + "/" + ref.Name
	}
	return ref
}

// ErrUnknownIssuer is returned for a Certificate whose issuerRef names no
// declared issuer.
var ErrUnknownIssuer = errors.New("unknown issuer")

func checkIssuer(c *Certificate, issuers map[IssuerRef]*Issuer) error {
	iss := issuers[issuerKey(c.IssuerRef, c.Namespace)]
	if iss == nil {
		where := "ClusterIssuer " + c.IssuerRef.Name
		if c.IssuerRef.Kind == KindIssuer {
			where = "Issuer " + c.Namespace + "/" + c.IssuerRef.Name
		}
		return fmt.Errorf("spec.issuerRef: %w: %s is not declared in the repository", ErrUnknownIssuer, where)
	}
	if iss.ACME == nil {
		return nil // the rules below are ACME's; a ca or selfSigned issuer signs any name
	}
	if c.IsCA {
		return fmt.Errorf("spec.isCA: %s is an ACME issuer, and ACME CAs do not issue CA certificates: use a selfSigned or ca issuer", iss.Key())
	}
	if err := acmeCanIssue(c, iss); err != nil {
		return err
	}
	if c.CommonName != "" && !contains(c.DNSNames, c.CommonName) && !contains(c.IPAddresses, c.CommonName) {
		return fmt.Errorf("spec.commonName %q is not in spec.dnsNames: ACME requires the commonName to also be present in the list of dnsNames", clip(c.CommonName))
	}
	if limitedProfile(iss.ACME.Profile) && len(c.DNSNames) > MaxNamesProfile {
		return fmt.Errorf("spec.dnsNames has %d names; %s orders with ACME profile %q, which allows at most %d: split the Certificate, or use an issuer with the default profile (up to %d)", len(c.DNSNames), iss.Key(), iss.ACME.Profile, MaxNamesProfile, MaxNames)
	}
	names := append(slices.Clone(c.DNSNames), c.IPAddresses...) // IP identifiers (RFC 8738)
	if len(names) == 0 && c.CommonName != "" {
		names = []string{c.CommonName}
	}
	if _, err := PlanSolvers(iss.ACME, names, c.Labels); err != nil {
		return fmt.Errorf("spec.dnsNames: %s (%s): %w", iss.Key(), iss.Source, err)
	}
	return nil
}

// IssuerFor returns the issuer a Certificate refers to.
func (s *Set) IssuerFor(c *Certificate) *Issuer {
	for i := range s.Issuers {
		iss := &s.Issuers[i]
		if issuerKey(iss.Ref(), iss.Namespace) == issuerKey(c.IssuerRef, c.Namespace) {
			return iss
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
