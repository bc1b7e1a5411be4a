package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
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
	path := filepath.Join(dir, clusterSeenFile)
	var kept seenFile
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &kept); err == nil && kept.Format == seenFormat && kept.Cluster == id {
			c.Prime(kept.Versions)
		} else {
			log.Info("ignoring what a previous run saw of the cluster: another cluster, or an unreadable file", "file", path)
		}
	}
	return func() {
		versions := c.Seen()
		if versions == nil {
			return
		}
		if err := writeSeen(path, seenFile{Format: seenFormat, Cluster: id, Versions: versions}); err != nil {
			log.Warn("what was seen of the cluster not kept; the next run lists every Secret with its data", "error", err)
		}
	}
}

// writeSeen replaces path atomically: a crash leaves the old file or the
// new one, never half of one.
func writeSeen(path string, f seenFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keep what was seen of the cluster: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("keep what was seen of the cluster: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("keep what was seen of the cluster: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keep what was seen of the cluster: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("keep what was seen of the cluster: %w", err)
	}
	return nil
}
