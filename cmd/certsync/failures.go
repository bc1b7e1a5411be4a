package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/certsync/certsync/reconcile"
)

// The backoff state of failed orders is kept next to the clone, so a
// restarted agent keeps waiting instead of retrying a failing CA at once.
// It holds error messages and times only, never key material.
const failuresFile = "failures.json"

func loadFailures(dir string) (map[string]reconcile.Failure, error) {
	b, err := os.ReadFile(filepath.Join(dir, failuresFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read backoff state: %w", err)
	}
	var f map[string]reconcile.Failure
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read backoff state %s: %w (delete the file to reset it)", filepath.Join(dir, failuresFile), err)
	}
	return f, nil
}

func saveFailures(dir string, f map[string]reconcile.Failure) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, failuresFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save backoff state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, failuresFile))
}
