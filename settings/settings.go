// Package settings reads certsync.yaml, the repository's own settings:
// the clusters it serves and which of them receive each certificate.
//
// cert-manager's schema stays untouched: a Certificate says where it goes
// with certsync.io/* annotations (see declared.AnnotationClusters), and
// certsync.yaml says it for whole folders.
//
//	apiVersion: certsync.io/v1alpha1
//	kind: Settings
//	clusters:
//	- name: prod-eu
//	  labels: {env: prod, region: eu}
//	- name: staging
//	  labels: {env: staging}
//	delivery:
//	- paths: [platform/]          # a folder, or a path.Match glob
//	  clusters: [all]
//	- paths: [apps/*/prod.yaml]
//	  clusterSelector: env=prod
//	policy:
//	- paths: [apps/shop/]          # declarations in these files ...
//	  names: [shop.example.com, "*.shop.example.com", .internal.example.com]
//	  issuers: [ClusterIssuer/letsencrypt]
//	  namespaces: [shop]
//	output:
//	  secrets: clusters/{cluster}/certificates   # default secrets/{cluster}
//
// # Which clusters receive a certificate
//
// The first of these that says something decides:
//
//  1. the Certificate's certsync.io/clusters or certsync.io/cluster-selector
//     annotation;
//  2. the first delivery rule whose paths match the file it is declared in;
//  3. Flux's layout: a file under clusters/<name>/ where <name> is a
//     declared cluster goes to that cluster;
//  4. with no clusters declared at all (no certsync.yaml), the agent's own
//     cluster (--cluster): a single-cluster setup needs no settings.
//
// Otherwise the certificate goes nowhere, and that is an error naming its
// file: a private key is never sent to a cluster nobody chose.
//
// # Where Secrets are committed
//
// Each cluster's Secrets are committed as <folder>/<namespace>/<secretName>.yaml,
// the folder secrets/<cluster> unless output.secrets names another with
// {cluster} in it (committed.Layout). Moving from secrets/ orders nothing: the
// next pass copies each Secret to its new place and prunes the old file.
//
// # Policy
//
// When certsync.yaml has policy rules, a certificate is issued only if a
// rule whose paths match the file it is declared in allows every one of
// its names (exact, "*.zone" for one label, ".zone" for any depth), its
// issuer ("Kind/name", "Issuer/namespace/name" for a namespaced one) and
// its namespace; a list left out allows anything. A repository path no
// rule covers may request nothing. The agent and certsync validate apply
// the same check, and a refusal names the rule.
package settings

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
)

// Path is where the settings file lives in the repository.
const Path = "certsync.yaml"

// FluxClustersDir is the folder of Flux's per-cluster layout.
const FluxClustersDir = "clusters/"

// All stands for every declared cluster in a clusters list.
const All = "all"

// Settings is certsync.yaml. The zero value is a repository without one.
type Settings struct {
	Clusters []Cluster
	Delivery []Rule
	Policy   []PolicyRule
	// Layout is where committed Secrets live (output.secrets).
	Layout committed.Layout
}

// PolicyRule allows the certificates declared in some files to request
// some names from some issuers into some namespaces. Empty lists allow
// anything.
type PolicyRule struct {
	Paths      []string
	Names      []string
	Issuers    []string
	Namespaces []string
	// Line and Column are where the rule starts in certsync.yaml.
	Line, Column int
}

// Cluster is one cluster certsync delivers to. Its name is the folder of
// its Secrets (secrets/<name>/) and what an applier's --cluster names.
type Cluster struct {
	Name   string
	Labels map[string]string
}

// Rule delivers the certificates declared in some files to some clusters.
type Rule struct {
	// Paths are folders (ending in "/") or path.Match globs of
	// repository files.
	Paths []string
	// Clusters are names, or [All]; Selector picks clusters by label.
	Clusters []string
	Selector labels.Selector
	// Line and Column are where the rule starts in certsync.yaml.
	Line, Column int
}

type rawSettings struct {
	APIVersion string       `yaml:"apiVersion"`
	Kind       string       `yaml:"kind"`
	Clusters   []rawCluster `yaml:"clusters"`
	Delivery   []rawRule    `yaml:"delivery"`
	Policy     []rawPolicy  `yaml:"policy"`
	Output     rawOutput    `yaml:"output"`
}

type rawOutput struct {
	Secrets string `yaml:"secrets"`
}

type rawPolicy struct {
	Paths      []string `yaml:"paths"`
	Names      []string `yaml:"names"`
	Issuers    []string `yaml:"issuers"`
	Namespaces []string `yaml:"namespaces"`
}

type rawCluster struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type rawRule struct {
	Paths           []string `yaml:"paths"`
	Clusters        []string `yaml:"clusters"`
	ClusterSelector string   `yaml:"clusterSelector"`
}

// Parse reads certsync.yaml. Errors name the file, line and column, as
// declared.Source counts them: at the value an error is about, at the list
// item when it is about the whole item.
func Parse(content []byte) (Settings, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		return Settings{}, fmt.Errorf("%s: malformed YAML: %v", Path, err)
	}
	if len(doc.Content) == 0 {
		return Settings{}, nil
	}
	root := doc.Content[0]
	// A second, strict read: a misspelt field (clusterSelecter) refused
	// is better than a rule that silently selects nothing.
	var raw rawSettings
	strict := yaml.NewDecoder(bytes.NewReader(content))
	strict.KnownFields(true)
	if err := strict.Decode(&raw); err != nil {
		return Settings{}, fmt.Errorf("%s: %v", Path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	text := declared.NewText(content)
	at := func(n *yaml.Node) declared.Source {
		return declared.Source{File: Path, Line: n.Line, Column: text.Column(n.Line, n.Column)}
	}
	if raw.APIVersion != "certsync.io/v1alpha1" || raw.Kind != "Settings" {
		return Settings{}, fmt.Errorf("%s: want apiVersion certsync.io/v1alpha1 and kind Settings, got %q %q", at(root), raw.APIVersion, raw.Kind)
	}
	var s Settings
	seen := map[string]bool{}
	for i, c := range raw.Clusters {
		item := listItem(root, "clusters", i)
		if msgs := validation.IsDNS1123Label(c.Name); len(msgs) > 0 || c.Name == All {
			why := strings.Join(msgs, "; ")
			if c.Name == All {
				why = `"all" stands for every cluster`
			}
			return Settings{}, fmt.Errorf("%s: clusters[%d].name %q is not a valid cluster name: %s", at(valueOf(item, "name")), i, c.Name, why)
		}
		if seen[c.Name] {
			return Settings{}, fmt.Errorf("%s: clusters[%d]: cluster %q is declared twice", at(item), i, c.Name)
		}
		seen[c.Name] = true
		for k, v := range c.Labels {
			key, value := entry(valueOf(item, "labels"), k)
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				return Settings{}, fmt.Errorf("%s: clusters[%d].labels: %q: %s", at(key), i, k, strings.Join(errs, "; "))
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				return Settings{}, fmt.Errorf("%s: clusters[%d].labels[%q]: %q: %s", at(value), i, k, v, strings.Join(errs, "; "))
			}
		}
		s.Clusters = append(s.Clusters, Cluster{Name: c.Name, Labels: c.Labels})
	}
	for i, r := range raw.Delivery {
		item := listItem(root, "delivery", i)
		start := at(item)
		rule := Rule{Paths: r.Paths, Line: start.Line, Column: start.Column}
		if j, err := checkPaths(r.Paths); err != nil {
			return Settings{}, fmt.Errorf("%s: delivery[%d].paths: %w", at(itemOf(item, "paths", j)), i, err)
		}
		switch {
		case len(r.Clusters) > 0 && r.ClusterSelector != "":
			return Settings{}, fmt.Errorf("%s: delivery[%d]: clusters and clusterSelector cannot be combined", start, i)
		case len(r.Clusters) > 0:
			if j, err := s.checkNames(r.Clusters); err != nil {
				return Settings{}, fmt.Errorf("%s: delivery[%d].clusters: %w", at(itemOf(item, "clusters", j)), i, err)
			}
			rule.Clusters = r.Clusters
		case r.ClusterSelector != "":
			sel, err := labels.Parse(r.ClusterSelector)
			if err != nil {
				return Settings{}, fmt.Errorf("%s: delivery[%d].clusterSelector: %v", at(valueOf(item, "clusterSelector")), i, err)
			}
			rule.Selector = sel
		default:
			return Settings{}, fmt.Errorf("%s: delivery[%d]: say which clusters receive these certificates (clusters or clusterSelector)", start, i)
		}
		s.Delivery = append(s.Delivery, rule)
	}
	for i, r := range raw.Policy {
		item := listItem(root, "policy", i)
		if j, err := checkPaths(r.Paths); err != nil {
			return Settings{}, fmt.Errorf("%s: policy[%d].paths: %w", at(itemOf(item, "paths", j)), i, err)
		}
		for j, n := range r.Names {
			if err := checkNamePattern(n); err != nil {
				return Settings{}, fmt.Errorf("%s: policy[%d].names: %q: %w", at(itemOf(item, "names", j)), i, n, err)
			}
		}
		for j, iss := range r.Issuers {
			kind, _, _ := strings.Cut(iss, "/")
			if (kind != declared.KindIssuer && kind != declared.KindClusterIssuer) || strings.Count(iss, "/") != map[string]int{declared.KindIssuer: 2, declared.KindClusterIssuer: 1}[kind] {
				return Settings{}, fmt.Errorf("%s: policy[%d].issuers: %q: write ClusterIssuer/NAME or Issuer/NAMESPACE/NAME", at(itemOf(item, "issuers", j)), i, iss)
			}
		}
		start := at(item)
		s.Policy = append(s.Policy, PolicyRule{Paths: r.Paths, Names: r.Names, Issuers: r.Issuers, Namespaces: r.Namespaces, Line: start.Line, Column: start.Column})
	}
	if len(s.Delivery) > 0 && len(s.Clusters) == 0 {
		return Settings{}, fmt.Errorf("%s: delivery rules need clusters: declare them under clusters", Path)
	}
	if raw.Output.Secrets != "" {
		layout, err := committed.NewLayout(raw.Output.Secrets)
		if err != nil {
			return Settings{}, fmt.Errorf("%s: output.secrets: %w", at(valueOf(valueOf(root, "output"), "secrets")), err)
		}
		s.Layout = layout
	}
	return s, nil
}

// ErrNoCluster is wrapped when a certificate would go to no cluster.
var ErrNoCluster = errors.New("delivered to no cluster")

// Targets returns the sorted names of the clusters that receive c.
// agentCluster is the agent's own cluster, used only when certsync.yaml
// declares no clusters. Errors name c's file and line.
func (s Settings) Targets(c *declared.Certificate, agentCluster string) ([]string, error) {
	at := c.Source
	if c.Delivery.Line > 0 {
		at.Line, at.Column = c.Delivery.Line, c.Delivery.Column
	}
	switch {
	case len(c.Delivery.Clusters) > 0:
		if len(s.Clusters) == 0 {
			return nil, fmt.Errorf("%s: Certificate %s: %s: no clusters are declared: list them in %s", at, c.Key(), declared.AnnotationClusters, Path)
		}
		if _, err := s.checkNames(c.Delivery.Clusters); err != nil {
			return nil, fmt.Errorf("%s: Certificate %s: %s: %w", at, c.Key(), declared.AnnotationClusters, err)
		}
		return s.named(c.Delivery.Clusters), nil
	case c.Delivery.Selector != "":
		sel, err := labels.Parse(c.Delivery.Selector)
		if err != nil {
			return nil, fmt.Errorf("%s: Certificate %s: %s: %v", at, c.Key(), declared.AnnotationClusterSelector, err)
		}
		return s.selected(sel, at, c.Key(), declared.AnnotationClusterSelector)
	}
	for _, r := range s.Delivery {
		if !r.matches(c.Source.File) {
			continue
		}
		if r.Selector != nil {
			return s.selected(r.Selector, c.Source, c.Key(), r.source().String()+" (delivery rule)")
		}
		return s.named(r.Clusters), nil
	}
	if rest, ok := strings.CutPrefix(c.Source.File, FluxClustersDir); ok {
		if name, _, nested := strings.Cut(rest, "/"); nested && s.has(name) {
			return []string{name}, nil
		}
	}
	if len(s.Clusters) == 0 {
		return []string{agentCluster}, nil
	}
	return nil, fmt.Errorf("%s: Certificate %s: %w: annotate it with %s, add a delivery rule for %s to %s, or declare it under %s<cluster>/",
		c.Source, c.Key(), ErrNoCluster, declared.AnnotationClusters, c.Source.File, Path, FluxClustersDir)
}

// Has reports whether name is a declared cluster; with no clusters
// declared, every name is (a single-cluster setup).
func (s Settings) Has(name string) bool { return len(s.Clusters) == 0 || s.has(name) }

// Names lists the declared clusters.
func (s Settings) Names() []string {
	out := make([]string, len(s.Clusters))
	for i, c := range s.Clusters {
		out[i] = c.Name
	}
	sort.Strings(out)
	return out
}

func (s Settings) has(name string) bool {
	return slices.ContainsFunc(s.Clusters, func(c Cluster) bool { return c.Name == name })
}

// checkNames checks a list of cluster names; the index is the name the
// error is about, or -1 for the list as a whole.
func (s Settings) checkNames(names []string) (int, error) {
	for i, n := range names {
		if n == All {
			if len(names) > 1 {
				return i, errors.New(`"all" cannot be combined with cluster names`)
			}
			continue
		}
		if !s.has(n) {
			return i, fmt.Errorf("cluster %q is not declared in %s (declared: %s)", n, Path, strings.Join(s.Names(), ", "))
		}
	}
	return -1, nil
}

func (s Settings) named(names []string) []string {
	if len(names) == 1 && names[0] == All {
		return s.Names()
	}
	out := slices.Clone(names)
	sort.Strings(out)
	return slices.Compact(out)
}

func (s Settings) selected(sel labels.Selector, at declared.Source, key, by string) ([]string, error) {
	var out []string
	for _, c := range s.Clusters {
		if sel.Matches(labels.Set(c.Labels)) {
			out = append(out, c.Name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: Certificate %s: %w: %s selects none of the clusters in %s (%q)", at, key, ErrNoCluster, by, Path, sel.String())
	}
	sort.Strings(out)
	return out, nil
}

// checkPaths validates the paths of a rule: folders or globs inside the
// repository. The index is the path the error is about, or -1 when the
// list is missing.
func checkPaths(paths []string) (int, error) {
	if len(paths) == 0 {
		return -1, errors.New("is required (a folder such as apps/, or a glob such as apps/*/prod.yaml)")
	}
	for i, p := range paths {
		if _, err := path.Match(p, ""); err != nil || p == "" || strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
			return i, fmt.Errorf("%q is not a repository folder or glob", p)
		}
	}
	return -1, nil
}

func (r Rule) matches(file string) bool { return pathsMatch(r.Paths, file) }

func pathsMatch(paths []string, file string) bool {
	for _, p := range paths {
		if strings.HasSuffix(p, "/") {
			if strings.HasPrefix(file, p) {
				return true
			}
			continue
		}
		if ok, _ := path.Match(p, file); ok {
			return true
		}
	}
	return false
}

// source is where the rule starts in certsync.yaml.
func (r Rule) source() declared.Source {
	return declared.Source{File: Path, Line: r.Line, Column: r.Column}
}

// The nodes an error points at. Each falls back to the node it looks in
// when what it looks for is not there (a list shorter than the decoded
// one, which cannot happen, or a key written through an alias or merge
// key), so an error always has a place.

// listItem is the i-th item of the top-level list key, or the list, or the
// document.
func listItem(root *yaml.Node, key string, i int) *yaml.Node {
	list := valueOf(root, key)
	if list.Kind == yaml.SequenceNode && i >= 0 && i < len(list.Content) {
		return list.Content[i]
	}
	return list
}

// itemOf is the i-th item of the list at key of mapping n: the value of
// key when i is -1 (the list as a whole), n when key is missing.
func itemOf(n *yaml.Node, key string, i int) *yaml.Node {
	if i < 0 {
		return valueOf(n, key)
	}
	return listItem(n, key, i)
}

// valueOf is the value of key in mapping n, or n.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if _, v := entry(n, key); v != nil {
		return v
	}
	return n
}

// entry is the key and value nodes of key in mapping n; both are n when
// it has no such key.
func entry(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				return n.Content[j], n.Content[j+1]
			}
		}
	}
	return n, n
}
