package ociimage

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestSourceDate(t *testing.T) {
	// Not testbed.Git: importing testbed would compile the API server's
	// and Pebble's dependencies into this small package's test.
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("this test needs git: %v", err)
	}
	repo := t.TempDir()
	commitTime := time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC)
	for _, args := range [][]string{
		{"init", "-q"},
		{"-c", "user.name=t", "-c", "user.email=t@example.test", "commit", "-q", "--allow-empty", "-m", "one"},
	} {
		cmd := exec.Command(git, args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE="+commitTime.Format(time.RFC3339), "GIT_AUTHOR_DATE=2000-01-01T00:00:00Z")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	notRepo := t.TempDir()

	tests := []struct {
		name    string
		dir     string
		env     string
		want    time.Time
		wantErr string
	}{
		{"SOURCE_DATE_EPOCH wins over the commit", repo, "1700000000", time.Unix(1700000000, 0), ""},
		{"the commit time of HEAD, not the author time", repo, "", commitTime, ""},
		{"the epoch outside a checkout", notRepo, "", time.Unix(0, 0), ""},
		{"a SOURCE_DATE_EPOCH that is no number", repo, "yesterday", time.Time{}, "SOURCE_DATE_EPOCH"},
		{"a negative SOURCE_DATE_EPOCH", repo, "-5", time.Time{}, "SOURCE_DATE_EPOCH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "SOURCE_DATE_EPOCH" {
					return tt.env
				}
				return ""
			}
			got, from, err := SourceDate(context.Background(), tt.dir, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want one about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) || from == "" {
				t.Errorf("SourceDate = %v (%q), %v; want %v", got, from, err, tt.want)
			}
		})
	}

	if rev := Revision(context.Background(), repo); len(rev) != 40 {
		t.Errorf("Revision of a checkout = %q, want a commit id", rev)
	}
	if rev := Revision(context.Background(), notRepo); rev != "" {
		t.Errorf("Revision outside a checkout = %q, want none", rev)
	}
}
