package declared

import (
	"fmt"
	"strings"
)

// Gateway API values cert-manager's gateway-shim acts on.
const (
	tlsModeTerminate   = "Terminate"
	tlsModePassthrough = "Passthrough"
)

// gatewayCerts lists the Certificates of a Gateway's listeners, as
// cert-manager's gateway-shim does: one per Secret a TLS listener refers
// to, named after it, with the hostnames of every listener that refers to
// it (once each). A listener is not cert-manager's when its protocol is
// neither HTTPS nor TLS, its TLS mode is Passthrough, or its name is in
// cert-manager.io/ignore-tls-listeners; those are skipped. The others
// must be complete: where cert-manager skips one with a warning Event,
// certsync reports a Problem.
func gatewayCerts(d *document, annotations map[string]string) ([]shimCert, []error) {
	var gw rawGateway
	if err := d.decode(&gw); err != nil {
		return nil, []error{err}
	}
	ignored := map[string]bool{}
	if v, ok := annotations[annIgnoreListeners]; ok {
		for _, name := range strings.Split(v, ",") {
			ignored[strings.TrimSpace(name)] = true
		}
	}
	type secretRef struct{ namespace, name string }
	byRef := map[secretRef]*shimCert{}
	var order []secretRef
	var errs []error
	for i, l := range gw.Spec.Listeners {
		if l.Protocol != "HTTPS" && l.Protocol != "TLS" {
			continue // cert-manager's --extra-gateway-api-protocols has no equivalent here
		}
		if l.TLS != nil && l.TLS.Mode != nil && *l.TLS.Mode == tlsModePassthrough {
			continue
		}
		if ignored[l.Name] {
			continue
		}
		path := fmt.Sprintf("spec.listeners[%d]", i)
		fail := func(field, msg string) {
			errs = append(errs, d.errorAt(place{field: field}, false, msg))
		}
		skipHint := fmt.Sprintf("; if its certificate comes from elsewhere, name the listener in %s", annIgnoreListeners)
		switch {
		case l.Hostname == nil || *l.Hostname == "":
			fail(path, "hostname is required: cert-manager skips a TLS listener without one (nothing is issued for it)"+skipHint)
			continue
		case l.TLS == nil:
			fail(path, "tls is required on an "+l.Protocol+" listener: cert-manager skips a listener without it (nothing is issued for it)"+skipHint)
			continue
		case len(l.TLS.CertificateRefs) == 0:
			fail(path+".tls", "certificateRefs is required: cert-manager skips a listener without one (nothing is issued for it)"+skipHint)
			continue
		case l.TLS.Mode != nil && *l.TLS.Mode != tlsModeTerminate:
			fail(path+".tls.mode", fmt.Sprintf("%q is not a TLS mode cert-manager issues for: Terminate (the default) or Passthrough (skipped)", clip(*l.TLS.Mode)))
			continue
		}
		bad := false
		for r, ref := range l.TLS.CertificateRefs {
			at := fmt.Sprintf("%s.tls.certificateRefs[%d]", path, r)
			switch {
			case ref.Group != nil && *ref.Group != "" && *ref.Group != "core":
				fail(at+".group", fmt.Sprintf("%q is not supported: cert-manager writes Secrets, of the core group (\"\" or \"core\")", clip(*ref.Group)))
			case ref.Kind != nil && *ref.Kind != "" && *ref.Kind != "Secret":
				fail(at+".kind", fmt.Sprintf("%q is not supported: cert-manager writes a Secret", clip(*ref.Kind)))
			case ref.Namespace != nil && *ref.Namespace != "" && *ref.Namespace != d.namespace:
				fail(at+".namespace", fmt.Sprintf("%q: cross-namespace secret references are not allowed in listeners (cert-manager skips this listener): the Secret must be in the Gateway's namespace, %s", clip(*ref.Namespace), d.namespace))
			default:
				continue
			}
			bad = true
		}
		if bad {
			continue // as cert-manager, the whole listener
		}
		for r, ref := range l.TLS.CertificateRefs {
			key := secretRef{d.namespace, ref.Name}
			sc := byRef[key]
			if sc == nil {
				at := fmt.Sprintf("%s.tls.certificateRefs[%d]", path, r)
				sc = &shimCert{
					secretName: ref.Name,
					secretAt:   place{field: at + ".name"},
					entry:      place{field: path},
					hostsAt:    place{field: path + ".hostname"},
				}
				byRef[key] = sc
				order = append(order, key)
			}
			sc.hosts = append(sc.hosts, shimHost{name: *l.Hostname, at: place{field: path + ".hostname"}})
		}
	}
	out := make([]shimCert, 0, len(order))
	for _, key := range order {
		out = append(out, *byRef[key])
	}
	return out, errs
}
