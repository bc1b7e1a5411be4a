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

// What the agent learns between passes is kept next to the clone, so a
// restarted agent keeps it: the backoff of failed orders (it keeps
// waiting instead of retrying a failing CA at once) and the renewal
// windows the CA suggested since issuance (it does not ask again before
// the CA's Retry-After). Times, serials and error messages only, never
// key material.
const (
	failuresFile = "failures.json"
	windowsFile  = "renewal-windows.json"
)

func loadFailures(dir string) (map[string]reconcile.Failure, error) {
	var f map[string]reconcile.Failure
	return f, loadState(dir, failuresFile, "backoff state", &f)
}

func saveFailures(dir string, f map[string]reconcile.Failure) error {
	return saveState(dir, failuresFile, "backoff state", f)
}

func loadWindows(dir string) (map[string]reconcile.Window, error) {
	var w map[string]reconcile.Window
	return w, loadState(dir, windowsFile, "renewal windows", &w)
}

func saveWindows(dir string, w map[string]reconcile.Window) error {
	return saveState(dir, windowsFile, "renewal windows", w)
}

// saveAgentState saves what rec learned; a failure only costs a restart
// some repeated work, so it is logged by the caller, never fatal.
func saveAgentState(dir string, rec *reconcile.Reconciler) error {
	return errors.Join(saveFailures(dir, rec.Failures()), saveWindows(dir, rec.Windows()))
}

func loadState(dir, file, what string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s %s: %w (delete the file to reset it)", what, filepath.Join(dir, file), err)
	}
	return nil
}

func saveState(dir, file, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, file+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save %s: %w", what, err)
	}
	return os.Rename(tmp, filepath.Join(dir, file))
}
