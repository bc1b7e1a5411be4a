package reconcile

// Re-rendering: what a Secret holds besides its certificate — the
// additional output formats, the keystores and their passwords, the
// labels and annotations of spec.secretTemplate — changes with the
// declaration, not with the certificate. cert-manager rewrites the Secret
// for such a change without issuing (its issuing controller's post-issuance
// policy checks, then one server-side apply: a template label or annotation
// removed from the Certificate is removed from the Secret), and so does
// certsync: the committed Secret is decrypted, rendered again from the same
// tls.crt, tls.key and ca.crt, and committed for every cluster that receives
// it. No order is spent: orders are scarce (Let's Encrypt's limits have no
// override) and nothing about the certificate changed.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/render"
)

// planRerender plans a Rerender of c when its committed Secret (base's
// source, whose record is rec) was rendered with other outputs, template
// or keystore passwords than c asks for now; rerendered reports that it
// did. The Rerender writes every copy base orders for (Path, Copies), as
// an order would. An agent without a key for the source cannot re-render:
// a change of the output formats or keystores then re-issues, as it did
// before certsync could re-render (kind, reason), and any other change
// waits for the next issuance, with a warning; neither orders unasked.
func planRerender(s *State, p *Plan, c *declared.Certificate, base Action, rec *committed.Certificate) (kind ActionKind, reason string, rerendered bool) {
	changes, outputs := renderChanges(c, rec, s.KeystorePasswords[c.Key()])
	if len(changes) == 0 {
		return "", "", false
	}
	why := strings.Join(changes, "; ")
	from := base.source()
	switch {
	case !s.NoKey[from]:
		a := base
		a.Kind, a.Reason = Rerender, why
		p.Actions = append(p.Actions, a)
		return "", "", true
	case outputs:
		return Reissue, why + "; this agent holds no key to decrypt " + from + " and re-render it, so it orders the certificate again", false
	}
	s.unrendered = append(s.unrendered, c.Key()+": "+why)
	return "", "", false
}

// renderChanges says, in the words of a plan's reason, what c asks its
// Secret to hold besides the certificate that rec was not rendered with;
// outputs is true when the output formats or keystores differ.
// passwords is State.KeystorePasswords of c.
func renderChanges(c *declared.Certificate, rec *committed.Certificate, passwords string) (changes []string, outputs bool) {
	if rec.OutputsHash != c.OutputsHash() {
		outputs = true
		changes = append(changes, outputsChanged(c, rec)...)
	}
	if now := c.TemplateHash(); rec.TemplateHash != now {
		changes = append(changes, templateChanged(rec.TemplateHash, now))
	}
	// With the outputs changed the keystores are made anew anyway, with
	// whatever password they have now.
	if !outputs && rec.KeystorePasswordsHash != passwords {
		refs := passwordRefs(c)
		switch {
		case len(refs) == 0:
			changes = append(changes, "keystore passwords no longer come from a Secret of the repository")
		case rec.KeystorePasswordsHash == "":
			// Rendered before certsync recorded it, or while the Secret
			// was read from the cluster: which value is unknown.
			changes = append(changes, "keystore password "+plural(len(refs), "Secret")+" "+strings.Join(refs, ", ")+" not recorded with the committed keystores")
		default:
			changes = append(changes, "keystore password "+plural(len(refs), "Secret")+" "+strings.Join(refs, ", ")+" changed")
		}
	}
	return changes, outputs
}

// outputsChanged names the output formats and keystores added and
// removed ("keystores changed: pkcs12 added"); a file rendered before
// certsync recorded the names is described by what c asks for now.
func outputsChanged(c *declared.Certificate, rec *committed.Certificate) []string {
	now := render.Outputs(c)
	if rec.Outputs == nil && rec.OutputsHash != "" {
		list := "none"
		if len(now) > 0 {
			list = strings.Join(now, ", ")
		}
		return []string{"additionalOutputFormats or keystores changed since the Secret was rendered (now: " + list + ")"}
	}
	var keystores, formats []string
	note := func(name, what string) {
		if name == render.OutputPKCS12 || name == render.OutputJKS {
			keystores = append(keystores, name+" "+what)
		} else {
			formats = append(formats, name+" "+what)
		}
	}
	for _, name := range now {
		if !slices.Contains(rec.Outputs, name) {
			note(name, "added")
		}
	}
	for _, name := range rec.Outputs {
		if !slices.Contains(now, name) {
			note(name, "removed")
		}
	}
	var out []string
	if len(keystores) > 0 {
		out = append(out, "keystores changed: "+strings.Join(keystores, ", "))
	}
	if len(formats) > 0 {
		out = append(out, "additionalOutputFormats changed: "+strings.Join(formats, ", "))
	}
	if len(out) == 0 {
		// The same names under another hash: what differs is a setting.
		out = append(out, "keystores changed: profile, alias or password source")
	}
	return out
}

// templateChanged says which half of declared.Certificate.TemplateHash
// ("<labels>.<annotations>") differs.
func templateChanged(was, now string) string {
	wasLabels, wasAnnotations, _ := strings.Cut(was, ".")
	nowLabels, nowAnnotations, _ := strings.Cut(now, ".")
	switch {
	case wasLabels != nowLabels && wasAnnotations != nowAnnotations:
		return "secretTemplate labels and annotations changed"
	case wasLabels != nowLabels:
		return "secretTemplate labels changed"
	}
	return "secretTemplate annotations changed"
}

// passwordRefs names the Secrets the created keystores of c read their
// passwords from ("namespace/name"), without repeats.
func passwordRefs(c *declared.Certificate) []string {
	var out []string
	for _, pw := range createdPasswords(c) {
		if ref := c.Namespace + "/" + pw.SecretRef.Name; pw.SecretRef.Name != "" && !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	return out
}

// rendered is what a committed Secret was rendered with beyond its
// certificate, in a form Observed.Rendered is compared with: "" for a
// Secret with none of it.
func rendered(rec *committed.Certificate) string {
	return renderedFrom(rec.OutputsHash, rec.TemplateHash, rec.KeystorePasswordsHash)
}

// renderedAnnotations is rendered for the annotations of a live Secret
// (the committed ones, applied as they are).
func renderedAnnotations(a map[string]string) string {
	return renderedFrom(a[committed.AnnotationOutputsHash], a[committed.AnnotationTemplateHash], a[committed.AnnotationKeystorePasswordsHash])
}

func renderedFrom(outputs, template, passwords string) string {
	if outputs == "" && template == "" && passwords == "" {
		return ""
	}
	return outputs + "|" + template + "|" + passwords
}

// calculate plans the pass on p. A Rerender decrypts its source: when
// probe is set, the sources this pass could not verify are tried first,
// and one no identity of the agent opens goes into State.NoKey and the
// plan is made again, so a keyless agent falls back instead of failing
// at every pass. A dry run does not probe: it plans as an agent that holds
// the key would (certsync plan has no key at all).
func (r *Reconciler) calculate(ctx context.Context, p *pass, probe bool) Plan {
	plan := Calculate(p.state)
	if !probe {
		return plan
	}
	again := false
	for _, a := range plan.Actions {
		if a.Kind != Rerender || p.verified[a.source()] {
			continue
		}
		// Only a missing key changes the plan; another failure (a file
		// that does not decrypt) is reported when the Rerender runs.
		if _, err := r.decryptSecret(ctx, p, a.source()); errors.Is(err, ErrNoKey) {
			if p.state.NoKey == nil {
				p.state.NoKey = map[string]bool{}
			}
			p.state.NoKey[a.source()], again = true, true
		}
	}
	if again {
		plan = Calculate(p.state)
	}
	return plan
}

// rerender renders the Secret a re-renders again: decrypted from its
// source, checked, rendered for the declaration as it stands with the same
// certificate and key, checked again, and encrypted for a.Path and each
// copy. It returns the Secret and the file changes; nothing is ordered.
func (r *Reconciler) rerender(ctx context.Context, p *pass, secrets issuer.SecretGetter, a Action) (*corev1.Secret, []FileChange, error) {
	c, from := a.Certificate, a.source()
	fail := func(err error) error { return fmt.Errorf("re-render %s from %s: %w", c.Key(), from, err) }
	old, err := r.decryptSecret(ctx, p, from)
	if errors.Is(err, ErrNoKey) {
		return nil, nil, fail(fmt.Errorf("%w; give this agent an age identity that can open it (add its recipient to the .sops.yaml rule of that path), or run `certsync renew %s` to order it again", err, c.Key()))
	}
	if err != nil {
		return nil, nil, fail(err)
	}
	rec, ok := p.state.Committed[from]
	if !ok {
		return nil, nil, fail(errors.New("no committed record"))
	}
	// The key is reused: only from a file whose metadata is what its
	// MAC covers and whose certificate and key belong together (a pass
	// without VerifyCommitted has not checked it yet).
	if err := render.Verify(old, rec); err != nil {
		return nil, nil, fail(err)
	}
	in, err := render.FromSecret(old)
	if err != nil {
		return nil, nil, fail(err)
	}
	// Read before anything is written: a password that cannot be read
	// leaves the committed Secret as it is.
	if in.Passwords, err = keystorePasswords(ctx, secrets, c); err != nil {
		return nil, nil, fail(fmt.Errorf("keystores: %w", err))
	}
	in.Certificate, in.KeystorePasswordsHash = c, p.state.KeystorePasswords[c.Key()]
	s, err := render.TLSSecret(in)
	if err != nil {
		return nil, nil, fail(err)
	}
	after := committed.FromAnnotations(s.Annotations)
	after.Namespace, after.SecretName = s.Namespace, s.Name
	if err := render.Verify(s, after); err != nil {
		return nil, nil, fail(err)
	}
	if after.Serial != rec.Serial || !after.NotAfter.Equal(rec.NotAfter) {
		return nil, nil, fail(fmt.Errorf("rendered serial %s (not after %s), committed %s (not after %s)", after.Serial, committed.FormatTime(after.NotAfter), rec.Serial, committed.FormatTime(rec.NotAfter)))
	}
	changes := make([]FileChange, 0, 1+len(a.Copies))
	for _, path := range append([]string{a.Path}, a.Copies...) {
		content, err := r.encryptSecret(ctx, p, path, s)
		if err != nil {
			return nil, nil, fail(err)
		}
		changes = append(changes, FileChange{Path: path, Content: content})
	}
	r.log.Info("re-rendered", "certificate", c.Key(), "serial", rec.Serial, "files", len(changes), "reason", a.Reason)
	return s, changes, nil
}
