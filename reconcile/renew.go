package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/settings"
)

// RequestRenewal commits a renewal request for every declared Certificate
// match selects, as `cmctl renew` does for cert-manager: the request is an
// audited commit, and the agent renews on its next pass and removes the
// request in the commit that carries the new certificate. It returns the
// keys of the certificates requested and the commit hash.
func RequestRenewal(ctx context.Context, repo Repository, match func(*declared.Certificate) bool, by string, now time.Time) ([]string, string, error) {
	for attempt := 1; ; attempt++ {
		tree, err := repo.Fetch(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("fetch repository: %w", err)
		}
		targets, err := matching(tree, match)
		if err != nil {
			return nil, "", err
		}
		var keys []string
		var changes []FileChange
		for _, c := range targets {
			content, err := committed.MarshalRenewRequest(committed.RenewRequest{Certificate: c.Key(), RequestedAt: now, RequestedBy: by})
			if err != nil {
				return nil, "", err
			}
			keys = append(keys, c.Key())
			changes = append(changes, FileChange{Path: committed.RenewRequestPath(c.Namespace, c.Name), Content: content})
		}
		msg := fmt.Sprintf("certsync: request renewal of %d %s\n\nRequested by %s.\n\n", len(keys), plural(len(keys), "certificate"), by)
		for _, k := range keys {
			msg += "Renew-Requested: " + k + "\n"
		}
		head, err := repo.Commit(ctx, tree, changes, msg)
		if err != nil {
			return nil, "", fmt.Errorf("commit renewal request: %w", err)
		}
		err = repo.Push(ctx)
		if err == nil {
			return keys, head.Commit(), nil
		}
		if !errors.Is(err, ErrPushRace) || attempt >= 5 {
			return nil, "", fmt.Errorf("push renewal request: %w", err)
		}
		remote, ferr := repo.Fetch(ctx)
		if ferr != nil {
			return nil, "", fmt.Errorf("fetch repository: %w", ferr)
		}
		if err := repo.Reset(ctx, remote); err != nil {
			return nil, "", err
		}
	}
}

// RenewalTargets lists the Certificates a renewal request would name,
// reading the remote head only: `certsync renew --dry-run`.
func RenewalTargets(ctx context.Context, repo Repository, match func(*declared.Certificate) bool) ([]string, error) {
	tree, err := repo.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch repository: %w", err)
	}
	targets, err := matching(tree, match)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(targets))
	for i, c := range targets {
		keys[i] = c.Key()
	}
	return keys, nil
}

// matching parses the tree's declarations and returns those match selects.
func matching(tree Tree, match func(*declared.Certificate) bool) ([]*declared.Certificate, error) {
	var layout committed.Layout
	if content, err := tree.ReadFile(settings.Path); err == nil {
		if conf, err := settings.Parse(content); err == nil {
			layout = conf.Layout
		}
	}
	var files []declared.File
	for _, path := range tree.Paths() {
		if declared.IsManifestPath(path, nil) && !layout.IsOutput(path) {
			content, err := tree.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			files = append(files, declared.File{Path: path, Content: content})
		}
	}
	set := declared.Parse(files)
	var out []*declared.Certificate
	for i := range set.Certificates {
		if match(&set.Certificates[i]) {
			out = append(out, &set.Certificates[i])
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no declared Certificate matches: check the name, namespace or selector (certsync status lists them)")
	}
	return out, nil
}

// MatchSelector returns a matcher for `certsync renew`: a name (with
// namespace, or any namespace when empty), all, or a label selector of
// comma-separated key=value pairs.
func MatchSelector(name, namespace string, all bool, selector string) (func(*declared.Certificate) bool, error) {
	labels := map[string]string{}
	if selector != "" {
		for _, kv := range strings.Split(selector, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("selector %q: want key=value[,key=value]", selector)
			}
			labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	switch {
	case all && (name != "" || selector != ""):
		return nil, errors.New("--all cannot be combined with a name or a selector")
	case !all && name == "" && selector == "":
		return nil, errors.New("name a Certificate, or use --all or -l selector")
	}
	return func(c *declared.Certificate) bool {
		if namespace != "" && c.Namespace != namespace {
			return false
		}
		if name != "" && c.Name != name {
			return false
		}
		for k, v := range labels {
			if c.Labels[k] != v {
				return false
			}
		}
		return true
	}, nil
}
