package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/certsync/certsync/cluster"
)

// clusterSeenFile keeps, next to the clone, what the agent last saw of
// its cluster's Secrets (cluster.Client.Seen): a new process, a one-shot
// reconcile or a restarted Pod, then lists metadata only instead of every
// Secret with its data. Like the verification results, it belongs to the
// operator's cache folder, not to the repository.
const clusterSeenFile = "certsync_cluster_seen"

type seenFile struct {
	Format   int               `json:"format"`
	Cluster  string            `json:"cluster"`
	Versions map[string]string `json:"versions"`
}

const seenFormat = 1

// primeSeen starts c from the versions kept in dir for the same cluster
// (by identity) and returns the function that keeps c's versions when the
// process is done with it. Anything unreadable, from another cluster or
// another format is ignored: c then lists in full, as without the file.
func primeSeen(ctx context.Context, c *cluster.Client, dir string, log *slog.Logger) (save func()) {
	id, err := c.Identity(ctx)
	if err != nil {
		log.Debug("what was seen of the cluster is not kept across runs", "error", err)
		return func() {}
	}
	const what = "what was seen of the cluster"
	var kept seenFile
	if err := loadState(dir, clusterSeenFile, what, &kept); err != nil || (kept.Versions != nil && (kept.Format != seenFormat || kept.Cluster != id)) {
		log.Info("ignoring what a previous run saw of the cluster: another cluster, or an unreadable file", "file", filepath.Join(dir, clusterSeenFile), "error", err)
	} else if kept.Versions != nil {
		c.Prime(kept.Versions)
	}
	return func() {
		versions := c.Seen()
		if versions == nil {
			return
		}
		if err := saveState(dir, clusterSeenFile, what, seenFile{Format: seenFormat, Cluster: id, Versions: versions}); err != nil {
			log.Warn("what was seen of the cluster not kept; the next run lists every Secret with its data", "error", err)
		}
	}
}
