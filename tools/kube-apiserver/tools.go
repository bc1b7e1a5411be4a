//go:build tools

// Package tools pins the API server build (and kubectl, which `make bench`
// times against certsync restore); see go.mod.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
