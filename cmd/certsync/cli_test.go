package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/reconcile"
)

// The command line itself: usage, unknown commands, bad flags, missing
// --repo, and a renewal request through `certsync renew`.
func TestCLI(t *testing.T) {
	noenv := func(string) string { return "" }
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"reconcile", "--no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"reconcile"}, 1, "--repo (or CERTSYNC_REPO) is required"},
		{[]string{"reconcile", "--repo", "x", "--log-level", "loud"}, 2, "want debug, info, warn or error"},
		{[]string{"renew", "--repo", "x"}, 2, "name a Certificate, or use --all or -l selector"},
		{[]string{"renew", "--all", "-l", "a=b", "--repo", "x"}, 2, "--all cannot be combined"},
		{[]string{"status", "--repo", "x", "-o", "yaml"}, 2, `-o "yaml": want table or json`},
		{[]string{"status", "shop/web", "--repo", "x"}, 2, "unexpected arguments"},
		{[]string{"restore", "--repo", "x"}, 2, "no cluster: pass --kubeconfig"},
		{[]string{"export", "--repo", "x"}, 2, "usage: certsync export"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, noenv, &out, &errb)
		if code != tt.wantCode || !strings.Contains(errb.String(), tt.wantErr) {
			t.Errorf("certsync %v: exit %d, stderr %q; want %d and %q", tt.args, code, errb.String(), tt.wantCode, tt.wantErr)
		}
	}
}

func TestRenewCommand(t *testing.T) {
	b := newBed(t, nil)
	var out, errb bytes.Buffer
	args := []string{"renew", "shop/checkout", "--repo", b.git.URL("certs"), "--git-username", gitUser, "--cache-dir", t.TempDir()}
	if code := run(context.Background(), args, func(k string) string { return b.env[k] }, &out, &errb); code != 0 {
		t.Fatalf("renew exited %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "renewal requested for shop/checkout") {
		t.Errorf("stdout: %s", out.String())
	}
	b.file(t, "requests/renew/shop/checkout.yaml")
	if msg := gitCmd(t, b.bare, "log", "-1", "--format=%B", "main"); !strings.Contains(msg, "Renew-Requested: shop/checkout") {
		t.Errorf("request commit lacks its trailer:\n%s", msg)
	}
}

func TestNextPassIn(t *testing.T) {
	soon := &reconcile.Result{Plan: reconcile.Plan{NextRenewal: time.Now().Add(10 * time.Second)}}
	for _, tt := range []struct {
		failures int
		res      *reconcile.Result
		min, max time.Duration
	}{
		{0, &reconcile.Result{}, time.Minute, time.Minute},
		{0, soon, 8 * time.Second, 10 * time.Second},
		{1, nil, 5 * time.Second, 5 * time.Second},
		{3, nil, 20 * time.Second, 20 * time.Second},
		{10, nil, time.Minute, time.Minute},
	} {
		if got := nextPassIn(time.Minute, tt.failures, tt.res); got < tt.min || got > tt.max {
			t.Errorf("failures %d: next pass in %s, want %s–%s", tt.failures, got, tt.min, tt.max)
		}
	}
}

// CERTSYNC_<FLAG> is parsed as the flag would be: a value that does not
// parse stops the command, booleans read like the command line, and the
// command line wins.
func TestEnvironmentConfiguresFlags(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		check   func(*options) bool
	}{
		{name: "a number that is not", env: map[string]string{"CERTSYNC_CONCURRENCY": "abc"}, wantErr: `CERTSYNC_CONCURRENCY="abc" (--concurrency)`},
		{name: "a duration without unit", env: map[string]string{"CERTSYNC_INTERVAL": "5"}, wantErr: `CERTSYNC_INTERVAL="5" (--interval)`},
		{name: "a share that is not a number", env: map[string]string{"CERTSYNC_MAX_PRUNE_SHARE": "ten"}, wantErr: "CERTSYNC_MAX_PRUNE_SHARE"},
		{name: "True is true", env: map[string]string{"CERTSYNC_DRY_RUN": "True"}, check: func(o *options) bool { return o.DryRun }},
		{name: "durations and shares are read", env: map[string]string{"CERTSYNC_INTERVAL": "5m", "CERTSYNC_MAX_PRUNE_SHARE": "0.5", "CERTSYNC_CLAIM_TTL": "20m"},
			check: func(o *options) bool {
				return o.Interval == 5*time.Minute && o.MaxPruneShare == 0.5 && o.ClaimTTL == 20*time.Minute
			}},
		{name: "the command line wins", env: map[string]string{"CERTSYNC_CONCURRENCY": "abc"}, args: []string{"--concurrency", "3"},
			check: func(o *options) bool { return o.Concurrency == 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errb bytes.Buffer
			o, _, code, ok := parseCommand("reconcile", tt.args, func(k string) string { return tt.env[k] }, &errb, nil)
			if tt.wantErr != "" {
				if ok || code != 2 || !strings.Contains(errb.String(), tt.wantErr) {
					t.Fatalf("ok %v, exit %d, stderr %q; want exit 2 naming %s", ok, code, errb.String(), tt.wantErr)
				}
				return
			}
			if !ok || !tt.check(o) {
				t.Fatalf("ok %v, stderr %q, options %+v", ok, errb.String(), o)
			}
		})
	}
}
