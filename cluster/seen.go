package cluster

import (
	"context"
	"fmt"
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A new Client lists its Secrets with their data once, to see which
// drifted; at 10,000 Secrets that list is most of a one-shot pass's time
// and memory. Seen and Prime carry what that list established (the
// resourceVersion at which each Secret's data matched what certsync
// applied) from one process to the next, so a later process lists
// metadata only and reads in full just the Secrets written since.

// Identity names the cluster: the UID of its kube-system namespace, which
// a rebuilt cluster does not share. Versions seen on one cluster must not
// prime a Client of another, where the same Secret may hold other data at
// the same resourceVersion.
func (c *Client) Identity(ctx context.Context) (string, error) {
	ns, err := c.cs.CoreV1().Namespaces().Get(ctx, metav1.NamespaceSystem, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read the cluster's identity (namespace %s): %w", metav1.NamespaceSystem, scrub(err))
	}
	return string(ns.UID), nil
}

// Seen returns, by "namespace/name", the resourceVersion at which each
// Secret's data was last seen to match what certsync applied; nil before
// the Client has listed the cluster. Secrets deleted since are left out
// by the next list, not here: Prime only ever trusts a version the
// cluster still reports.
func (c *Client) Seen() map[string]string {
	c.seen.mu.Lock()
	defer c.seen.mu.Unlock()
	if !c.seen.listed {
		return nil
	}
	return maps.Clone(c.seen.versions)
}

// Prime adopts versions a previous Client saw on this cluster (Seen, with
// the same Identity): the first Observe then lists metadata only. A
// Secret written since has another resourceVersion and is read in full;
// one certsync never saw match is read in full too.
func (c *Client) Prime(versions map[string]string) {
	c.seen.mu.Lock()
	defer c.seen.mu.Unlock()
	if c.seen.listed {
		return // this Client knows better already
	}
	c.seen.versions = maps.Clone(versions)
	c.seen.listed = true
}
