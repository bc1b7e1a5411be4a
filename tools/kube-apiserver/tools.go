//go:build tools

// Package tools pins the API server build; see go.mod.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
