package committed

import (
	"fmt"
	"path"
	"strings"
)

// Layout says where the Secret of a certificate is committed for each
// cluster: <folder>/<namespace>/<secretName>.yaml, where the folder names
// the cluster through the {cluster} placeholder. The zero Layout is the
// default, secrets/{cluster}; certsync.yaml's output.secrets chooses
// another, such as clusters/{cluster}/certificates to keep each cluster's
// Secrets inside its own folder of Flux's layout.
//
// Files of the default layout are still read after the folder changed:
// they are committed certificates, which the planner copies to their new
// place and prunes, instead of ordering them again.
type Layout struct {
	// before and after surround {cluster} in the folder template.
	before, after string
}

// ClusterPlaceholder stands for the cluster's name in a folder template.
const ClusterPlaceholder = "{cluster}"

// DefaultSecretsFolder is the folder template of the zero Layout.
const DefaultSecretsFolder = SecretsDir + ClusterPlaceholder

// NewLayout checks a folder template: a clean relative path holding
// {cluster} once as a whole path element, outside the folders certsync
// keeps its other files in. An empty template is the default.
func NewLayout(folder string) (Layout, error) {
	if folder == "" || folder == DefaultSecretsFolder {
		return Layout{}, nil
	}
	folder = strings.TrimSuffix(folder, "/")
	if path.IsAbs(folder) || path.Clean(folder) != folder || folder == "." || strings.HasPrefix(folder, "../") {
		return Layout{}, fmt.Errorf("%q is not a clean path relative to the repository root", folder)
	}
	if strings.Count(folder, ClusterPlaceholder) != 1 {
		return Layout{}, fmt.Errorf("%q must contain %s once: each cluster needs a folder of its own", folder, ClusterPlaceholder)
	}
	if strings.ContainsAny(strings.ReplaceAll(folder, ClusterPlaceholder, ""), "{}*?[]\\") {
		return Layout{}, fmt.Errorf("%q: only %s may be substituted, and no glob characters", folder, ClusterPlaceholder)
	}
	before, after, _ := strings.Cut(folder, ClusterPlaceholder)
	if (before != "" && !strings.HasSuffix(before, "/")) || (after != "" && !strings.HasPrefix(after, "/")) {
		return Layout{}, fmt.Errorf("%q: %s must be a whole folder name, as in clusters/%s/certificates", folder, ClusterPlaceholder, ClusterPlaceholder)
	}
	for _, reserved := range OutputDirs() {
		if strings.HasPrefix(folder+"/", reserved) {
			return Layout{}, fmt.Errorf("%q is inside %s, which certsync uses for other files", folder, reserved)
		}
	}
	return Layout{before: before, after: after}, nil
}

// Folder is the template, as certsync.yaml writes it.
func (l Layout) Folder() string {
	if l == (Layout{}) {
		return DefaultSecretsFolder
	}
	return l.before + ClusterPlaceholder + l.after
}

// ClusterPrefix is the folder holding every Secret of one cluster, with a
// trailing slash.
func (l Layout) ClusterPrefix(cluster string) string {
	if l == (Layout{}) {
		return ClusterPrefix(cluster)
	}
	return l.before + cluster + l.after + "/"
}

// SecretPath is where the Secret of a Certificate is kept for one cluster.
func (l Layout) SecretPath(cluster, namespace, secretName string) string {
	return l.ClusterPrefix(cluster) + namespace + "/" + secretName + ".yaml"
}

// ParseSecretPath splits a path SecretPath makes, or one of the default
// layout (moved says which). ok is false for any other path, including
// ones that try to leave the folder.
func (l Layout) ParseSecretPath(p string) (cluster, namespace, secretName string, moved, ok bool) {
	if l != (Layout{}) {
		if cluster, namespace, secretName, ok = l.parse(p); ok {
			return cluster, namespace, secretName, false, true
		}
	}
	cluster, namespace, secretName, ok = ParseSecretPath(p)
	return cluster, namespace, secretName, ok && l != (Layout{}), ok
}

func (l Layout) parse(p string) (cluster, namespace, secretName string, ok bool) {
	rest, found := strings.CutPrefix(p, l.before)
	if !found || path.Ext(p) != ".yaml" || path.Clean(p) != p {
		return "", "", "", false
	}
	cluster, rest, found = strings.Cut(rest, "/")
	if !found {
		return "", "", "", false
	}
	rest, found = strings.CutPrefix("/"+rest, l.after+"/")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(strings.TrimSuffix(rest, ".yaml"), "/")
	if len(parts) != 2 {
		return "", "", "", false
	}
	for _, s := range []string{cluster, parts[0], parts[1]} {
		if s == "" || s == "." || s == ".." {
			return "", "", "", false
		}
	}
	return cluster, parts[0], parts[1], true
}

// IsOutput reports whether p is one of certsync's own files (a committed
// Secret in this layout or the default one, an account key, a renewal
// request, a claim): never a declaration, whatever it holds.
func (l Layout) IsOutput(p string) bool {
	for _, dir := range OutputDirs() {
		if strings.HasPrefix(p, dir) {
			return true
		}
	}
	_, _, _, _, ok := l.ParseSecretPath(p)
	return ok
}
