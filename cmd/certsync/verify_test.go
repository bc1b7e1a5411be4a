package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// One-shot `certsync reconcile` runs on one cache folder (each a new
// Reconciler, as a new process): the committed files are decrypted to be
// verified by the first run that reads them, never again by the next;
// a new cache folder with a budget verifies that many.
func TestVerificationKeptAcrossRuns(t *testing.T) {
	b := newBed(t, nil)
	now := time.Now()
	issued := b.mustPass(t, now)
	if len(issued.Issued) == 0 {
		t.Fatal("the example repository issued nothing")
	}
	files := len(issued.Records)
	for _, step := range []struct {
		name      string
		extra     []string
		decrypted int
		verified  int
	}{
		// The files the first run wrote are new blobs to this one.
		{name: "the next run verifies each committed file", decrypted: files, verified: files},
		{name: "a run after it decrypts nothing", decrypted: 0, verified: files},
		{name: "a new cache folder verifies within its budget", extra: []string{"--cache-dir", filepath.Join(b.dir, "other-clone"), "--verify-per-pass", "1"}, decrypted: 1, verified: 1},
		{name: "and the next pass the next one", extra: []string{"--cache-dir", filepath.Join(b.dir, "other-clone"), "--verify-per-pass", "1"}, decrypted: 1, verified: 2},
	} {
		res := b.mustPass(t, now, step.extra...)
		verified := 0
		for _, ok := range res.Verified {
			if ok {
				verified++
			}
		}
		if res.Decrypted != step.decrypted || verified != step.verified || res.Plan.HasChanges() {
			t.Errorf("%s: decrypted %d, verified %d of %d, changes %v; want decrypted %d, verified %d", step.name, res.Decrypted, verified, len(res.Verified), res.Plan.Actions, step.decrypted, step.verified)
		}
	}
	if _, err := os.Stat(filepath.Join(b.dir, "clone", verifiedStoreFile)); err != nil {
		t.Errorf("no verification store in the cache folder: %v", err)
	}
}
