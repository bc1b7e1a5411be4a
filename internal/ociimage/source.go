package ociimage

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// SourceDate is the time to stamp an image built from the Git checkout
// at dir, so that rebuilding the same source gives the same digest:
//
//  1. SOURCE_DATE_EPOCH when set (the reproducible-builds.org
//     convention: seconds since the Unix epoch);
//  2. else the commit time of HEAD (`git log -1 --format=%ct`);
//  3. else the Unix epoch, when dir is no Git checkout or git is missing.
//
// It also says which of the three it used, for the build log. A
// SOURCE_DATE_EPOCH that is not a number is an error, not a silent
// fallback: the image would not be the one asked for.
func SourceDate(ctx context.Context, dir string, getenv func(string) string) (time.Time, string, error) {
	if v := strings.TrimSpace(getenv("SOURCE_DATE_EPOCH")); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, "", fmt.Errorf("SOURCE_DATE_EPOCH=%q: want whole seconds since 1970-01-01 UTC", v)
		}
		return time.Unix(sec, 0).UTC(), "SOURCE_DATE_EPOCH", nil
	}
	out, err := git(ctx, dir, "log", "-1", "--format=%ct")
	if err != nil {
		return time.Unix(0, 0).UTC(), "the Unix epoch (no Git commit to date the source by)", nil
	}
	sec, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("git log -1 --format=%%ct printed %q, not a time", out)
	}
	return time.Unix(sec, 0).UTC(), "the commit time of HEAD", nil
}

// Revision is the commit HEAD points at in the checkout at dir, or ""
// when there is none.
func Revision(ctx context.Context, dir string) string {
	out, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return ""
	}
	return out
}

// git runs a read-only git command in dir and returns its trimmed output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
