package reconcile

// Private CAs. A `ca` issuer signs with the key pair of a Secret: one
// certsync committed itself (a Certificate with that secretName, usually
// an isCA one from a selfSigned issuer, as in cert-manager's documented
// bootstrap) or a SOPS-encrypted Secret declared in the repository. Until
// that Secret exists, the Certificates of the issuer wait for it instead
// of failing as orders. A chain of CAs completes one level per pass; when
// the pass issues the Secret a Certificate waits for, the plan asks for
// the next pass at once (Plan.NextRenewal = Now).

import (
	"fmt"
	"sort"
	"strings"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// Signing is what the planner knows of the Secrets `ca` issuers sign with.
type Signing struct {
	// Secrets is the Secret ("namespace/name") the issuer of each
	// Certificate signs with, by Certificate key; only Certificates of a
	// `ca` issuer have one.
	Secrets map[string]string
	// Available are the Secrets ("namespace/name") an issuer can read:
	// declared in the repository (SOPS-encrypted), or committed by
	// certsync with a sound copy (readable, verified, encrypted) in any
	// cluster's folder.
	Available map[string]bool
	// FromCluster is set when issuers may also read Secrets from the
	// cluster (Config.IssuerSecretsFromCluster): a Secret that is not
	// Available may be there, so nothing waits for it.
	FromCluster bool
}

// ready reports whether an issuer can read the Secret.
func (g Signing) ready(secret string) bool { return g.FromCluster || g.Available[secret] }

// planSignerWait turns the order of base.Certificate into a Wait when its
// `ca` issuer's Secret does not exist yet, and says what it waits for. It
// reports whether it did; the agent's own copy is still applied.
func planSignerWait(s *State, p *Plan, base, own Action, reason string) bool {
	c := base.Certificate
	secret, signed := s.Signing.Secrets[c.Key()]
	if !signed || s.Signing.ready(secret) {
		return false
	}
	why, soon := s.signerWait(c, secret)
	a := base
	a.Kind, a.Reason, a.WaitsFor = Wait, reason+"; "+why, secret
	p.Actions = append(p.Actions, a)
	if soon && (p.NextRenewal.IsZero() || s.Now.Before(p.NextRenewal)) {
		p.NextRenewal = s.Now
	}
	planApply(s, p, own)
	return true
}

// signerWait says what c waits for, and whether that arrives in this pass.
func (s *State) signerWait(c *declared.Certificate, secret string) (string, bool) {
	ns, name, _ := strings.Cut(secret, "/")
	head := fmt.Sprintf("waiting for Secret %s, the CA of %s %s", secret, c.IssuerRef.Kind, c.IssuerRef.Name)
	producer := s.producer(secret)
	switch {
	case producer == nil:
		return fmt.Sprintf("%s: no Certificate issues it and the repository declares no such Secret — declare a Certificate with secretName %s in namespace %s (isCA, from a selfSigned issuer) or commit the Secret SOPS-encrypted", head, name, ns), false
	case producer.Key() == c.Key():
		return fmt.Sprintf("%s: only this Certificate would issue it, and a Certificate cannot be signed by its own Secret — issue it from a selfSigned issuer", head), false
	case s.ordersThisPass(producer):
		return fmt.Sprintf("%s: Certificate %s issues it in this pass, and the next pass orders this one (a chain of CAs completes one level per pass)", head, producer.Key()), true
	}
	return fmt.Sprintf("%s: Certificate %s will issue it once it can be ordered itself (a chain of CAs completes one level per pass)", head, producer.Key()), false
}

// producer is the Certificate whose Secret is secret ("namespace/name").
func (s *State) producer(secret string) *declared.Certificate {
	for i := range s.Certificates {
		if c := &s.Certificates[i]; c.Namespace+"/"+c.SecretName == secret {
			return c
		}
	}
	return nil
}

// ordersThisPass reports whether a Certificate with no sound committed
// copy is ordered in this pass: no other agent holds it, no failure holds
// it back, and its own CA, if any, is there.
func (s *State) ordersThisPass(c *declared.Certificate) bool {
	paths, _ := s.secretPaths(c)
	if _, held := s.claimedBy(paths); held {
		return false
	}
	if _, _, holding := s.backoff(c); holding {
		return false
	}
	secret, signed := s.Signing.Secrets[c.Key()]
	return !signed || s.Signing.ready(secret)
}

// readSigning fills State.Signing. It also folds the serial of each CA's
// committed certificate into the fingerprints of the Certificates it
// signs, so a CA re-issued after a failure it caused (not a CA, expired)
// releases them at once; and it reports, as a problem of the pass, a CA
// Secret that nothing in the repository can ever provide.
func (r *Reconciler) readSigning(p *pass) {
	_, reader := r.cfg.Cluster.(SecretReader)
	g := Signing{Secrets: map[string]string{}, Available: map[string]bool{}, FromCluster: r.cfg.IssuerSecretsFromCluster && reader}
	for _, sec := range p.set.Secrets {
		g.Available[sec.Key()] = true
	}
	newest := map[string]committed.Certificate{}
	for path, rec := range p.state.Committed {
		if p.state.Corrupt[path] != nil || exposed(&rec) {
			continue
		}
		key := rec.Namespace + "/" + rec.SecretName
		g.Available[key] = true
		if cur, ok := newest[key]; !ok || rec.NotBefore.After(cur.NotBefore) {
			newest[key] = rec
		}
	}
	issuers := map[string]*declared.Issuer{} // by Secret
	waiting := map[string]int{}              // Certificates waiting, by Secret
	for i := range p.state.Certificates {
		c := &p.state.Certificates[i]
		iss := p.set.IssuerFor(c)
		if iss == nil || iss.CA == nil {
			continue
		}
		secret := iss.SecretNamespace() + "/" + iss.CA.SecretName
		g.Secrets[c.Key()] = secret
		if rec, ok := newest[secret]; ok && p.state.Fingerprints != nil {
			p.state.Fingerprints[c.Key()] = fingerprint(p.state.Fingerprints[c.Key()], rec.Serial)
		}
		if !g.ready(secret) {
			issuers[secret] = iss
			waiting[secret]++
		}
	}
	p.state.Signing = g
	if p.state.ApplyOnly {
		return
	}
	secrets := make([]string, 0, len(waiting))
	for secret := range waiting {
		secrets = append(secrets, secret)
	}
	sort.Strings(secrets)
	for _, secret := range secrets {
		if why := p.state.unprovidable(secret); why != "" {
			iss, n := issuers[secret], waiting[secret]
			p.problems = append(p.problems, fmt.Errorf("%s (%s): spec.ca.secretName: Secret %s %s; %d %s waiting for it", iss.Key(), iss.Source, secret, why, n, plural(n, "Certificate")))
		}
	}
}

// unprovidable says why a missing CA Secret can never appear ("" when a
// Certificate can issue it, in this pass or after the CAs above it): no
// Certificate issues it, or the Certificates that would wait for one
// another.
func (s *State) unprovidable(secret string) string {
	var path []string
	seen := map[string]bool{}
	for cur := secret; ; {
		if seen[cur] {
			return fmt.Sprintf("can never be issued: the Certificates that would issue it wait for one another (%s)", strings.Join(append(path, cur), " → "))
		}
		seen[cur] = true
		producer := s.producer(cur)
		if producer == nil {
			ns, name, _ := strings.Cut(cur, "/")
			if cur != secret {
				return fmt.Sprintf("can never be issued: it waits for Secret %s, which no Certificate issues and the repository does not declare", cur)
			}
			return fmt.Sprintf("is neither committed by certsync nor declared in the repository, and no Certificate issues it: declare a Certificate with secretName %s in namespace %s (isCA, from a selfSigned issuer), or commit the Secret SOPS-encrypted", name, ns)
		}
		path = append(path, cur+" (Certificate "+producer.Key()+")")
		next, signed := s.Signing.Secrets[producer.Key()]
		if !signed || s.Signing.ready(next) {
			return ""
		}
		cur = next
	}
}
