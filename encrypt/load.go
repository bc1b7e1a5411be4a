package encrypt

import (
	"bytes"
	"errors"
	"io"

	sops "github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/stores"
	"go.yaml.in/yaml/v3"

	"github.com/certsync/certsync/internal/blockyaml"
)

// sops' YAML store parses every file twice: once into a map, only so that
// the YAML library refuses repeated keys, and once into nodes. For a
// restore that is the largest cost left after the walk. loadEncrypted
// parses once and looks for repeated keys itself, for the files certsync
// and the sops CLI write for Kubernetes manifests: no comments, anchors or
// aliases. Anything else is left to sops' store (errLeaveToSOPS), and so
// is any file this parser would read differently: what it returns is
// checked like any other tree (values by the MAC, keys of encrypted values
// by their additional data), and the tests compare it with sops' reading.
func loadEncrypted(in []byte) (sops.Tree, error) {
	var branches sops.TreeBranches
	if doc, err := blockyaml.Parse(in); err == nil && !hasComments(doc) {
		branch, err := nodeBranch(doc.Content[0])
		if err != nil {
			return sops.Tree{}, err
		}
		return treeOf(sops.TreeBranches{branch})
	}
	d := yaml.NewDecoder(bytes.NewReader(in))
	for {
		var doc yaml.Node
		err := d.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || hasComments(&doc) || len(doc.Content) != 1 {
			return sops.Tree{}, errLeaveToSOPS
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return sops.Tree{}, errLeaveToSOPS
		}
		branch, err := nodeBranch(root)
		if err != nil {
			return sops.Tree{}, err
		}
		branches = append(branches, branch)
	}
	return treeOf(branches)
}

// treeOf splits the sops metadata from the documents.
func treeOf(branches sops.TreeBranches) (sops.Tree, error) {
	branches, meta, err := stores.ExtractMetadata(branches, stores.MetadataOpts{Flatten: stores.MetadataFlattenNone})
	if err != nil {
		return sops.Tree{}, errLeaveToSOPS
	}
	return sops.Tree{Branches: branches, Metadata: meta}, nil
}

func hasComments(n *yaml.Node) bool {
	return n.HeadComment != "" || n.LineComment != "" || n.FootComment != ""
}

func nodeBranch(n *yaml.Node) (sops.TreeBranch, error) {
	if hasComments(n) || n.Anchor != "" {
		return nil, errLeaveToSOPS
	}
	branch := make(sops.TreeBranch, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode || hasComments(k) || k.Anchor != "" || k.Tag == "!!merge" {
			return nil, errLeaveToSOPS
		}
		// The check the YAML library makes when decoding into a map.
		for j := i + 2; j < len(n.Content); j += 2 {
			if n.Content[j].Kind == k.Kind && n.Content[j].Value == k.Value {
				return nil, errLeaveToSOPS
			}
		}
		key, err := scalar(k)
		if err != nil {
			return nil, err
		}
		v, err := nodeValue(n.Content[i+1])
		if err != nil {
			return nil, err
		}
		branch = append(branch, sops.TreeItem{Key: key, Value: v})
	}
	return branch, nil
}

func nodeValue(n *yaml.Node) (any, error) {
	if hasComments(n) || n.Anchor != "" {
		return nil, errLeaveToSOPS
	}
	switch n.Kind {
	case yaml.MappingNode:
		return nodeBranch(n)
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			v, err := nodeValue(item)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, errLeaveToSOPS
}

// scalar reads a scalar as sops does (Node.Decode into an interface{}),
// without reflection for the strings that make up nearly all of a file.
func scalar(n *yaml.Node) (any, error) {
	if n.ShortTag() == "!!str" {
		return n.Value, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, errLeaveToSOPS
	}
	return v, nil
}
