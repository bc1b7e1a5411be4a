package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// SOPSConfigPath is where the repository keeps its SOPS creation rules.
const SOPSConfigPath = ".sops.yaml"

// pass is what one pass read: the tree it planned on, the declarations,
// the state handed to Calculate, and the Encrypter built for that tree.
type pass struct {
	tree     Tree
	set      declared.Set
	state    State
	enc      Encrypter
	problems []error
	// lastPlan is the plan calculated on tree.
	lastPlan Plan
	// requests are the manual renewal requests by Certificate key.
	requests map[string]committed.RenewRequest
}

func (p *pass) plan() Plan { return p.lastPlan }

// readState reads declarations and committed records from the tree. Only
// plaintext is read: planning never needs a decryption key.
func (r *Reconciler) readState(ctx context.Context, tree Tree, observed []ObservedSecret) (*pass, error) {
	sopsConfig, err := tree.ReadFile(SOPSConfigPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", SOPSConfigPath, err)
	}
	enc, err := r.cfg.Encryption(sopsConfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", SOPSConfigPath, err)
	}
	p := &pass{tree: tree, enc: enc, requests: map[string]committed.RenewRequest{}}
	p.state = State{
		Now:          r.cfg.Clock(),
		Cluster:      r.cfg.ClusterName,
		Committed:    map[string]committed.Certificate{},
		Unreadable:   map[string]error{},
		Accounts:     map[string][]string{},
		ClusterKnown: r.cfg.Cluster != nil,
		Observed:     map[string]Observed{},
		Failures:     r.failureSnapshot(),
		Policy:       r.cfg.Policy,
	}
	prefix := committed.ClusterPrefix(r.cfg.ClusterName)
	var recordPaths, declPaths []string
	for _, path := range tree.Paths() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(path, prefix):
			recordPaths = append(recordPaths, path)
		case strings.HasPrefix(path, committed.AccountsDir):
			content, err := tree.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			recipients, err := committed.Recipients(path, content)
			if err != nil {
				p.problems = append(p.problems, err)
				continue
			}
			p.state.Accounts[path] = recipients
		case strings.HasPrefix(path, committed.RequestsDir):
			content, err := tree.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			req, err := committed.ReadRenewRequest(path, content)
			if err != nil {
				p.problems = append(p.problems, err)
				continue
			}
			p.requests[req.Certificate] = req
		case declared.IsManifestPath(path, committed.OutputDirs()):
			declPaths = append(declPaths, path)
		}
	}
	cache := r.cache.next(tree)
	records, parts, err := cache.parse(ctx, recordPaths, declPaths)
	if err != nil {
		return nil, err
	}
	r.cache.store(cache)
	for _, path := range recordPaths {
		c := records[path]
		if c.err != nil {
			p.state.Unreadable[path] = c.err
			p.problems = append(p.problems, c.err)
			continue
		}
		p.state.Committed[path] = c.rec
	}
	p.set = declared.Combine(parts)
	p.state.RenewRequests = map[string]time.Time{}
	for key, req := range p.requests {
		p.state.RenewRequests[key] = req.RequestedAt
	}
	p.state.Certificates = p.set.Certificates
	p.state.BrokenCertificates, p.state.BrokenSources = map[string]bool{}, map[string]bool{}
	for _, prob := range p.set.Problems {
		p.state.BrokenSources[prob.Source.File] = true
		if name, ok := strings.CutPrefix(prob.Object, "Certificate "); ok {
			p.state.BrokenCertificates[name] = true
		}
	}
	if lister, ok := enc.(RecipientLister); ok {
		p.state.DesiredRecipients = map[string][]string{}
		paths := make([]string, 0, len(p.state.Committed)+len(p.state.Accounts))
		for path := range p.state.Committed {
			paths = append(paths, path)
		}
		for path := range p.state.Accounts {
			paths = append(paths, path)
		}
		for _, path := range paths {
			want, err := lister.Recipients(path)
			if err != nil {
				p.problems = append(p.problems, fmt.Errorf("%s: recipients from %s: %w", path, SOPSConfigPath, err))
				continue
			}
			p.state.DesiredRecipients[path] = want
		}
	}
	for _, o := range observed {
		p.state.Observed[o.Namespace+"/"+o.Name] = Observed{
			Serial:      o.Annotations[committed.AnnotationSerial],
			Drifted:     o.Drifted,
			Certificate: o.Annotations[committed.AnnotationCertificate],
			Source:      o.Annotations[committed.AnnotationSource],
		}
	}
	return p, nil
}
