package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

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
		{[]string{"reconcile", "--no-such-flag"}, 2, "unknown flag: --no-such-flag"},
		{[]string{"reconcile", "extra"}, 2, `unexpected arguments ["extra"]`},
		{[]string{"reconcile"}, 1, "--repo (or CERTSYNC_REPO) is required"},
		{[]string{"reconcile", "--repo", "x", "--log-level", "loud"}, 2, "want debug, info, warn or error"},
		{[]string{"reconcile", "--repo", "x", "--role", "boss"}, 2, "want issuer, applier or both"},
		{[]string{"renew", "--repo", "x"}, 2, "name a Certificate, or use --all or -l selector"},
		{[]string{"renew", "--all", "-l", "a=b", "--repo", "x"}, 2, "--all cannot be combined"},
		{[]string{"renew", "a", "b", "--repo", "x"}, 2, "one certificate at a time"},
		{[]string{"status", "--repo", "x", "-o", "wide"}, 2, `invalid argument "wide" for "-o, --output" flag: want table, json or yaml`},
		{[]string{"status", "shop/web", "--repo", "x"}, 2, "unexpected arguments"},
		{[]string{"status", "--repo", "x", "--concurrency", "3"}, 2, "unknown flag: --concurrency"},
		{[]string{"plan", "-o", "html"}, 2, "want table, markdown, json or yaml"},
		{[]string{"plan", "a", "b"}, 2, "one repository folder"},
		{[]string{"restore", "--repo", "x"}, 2, "no cluster: pass --kubeconfig"},
		{[]string{"export", "--repo", "x"}, 2, "usage: certsync export"},
		{[]string{"completion", "tcsh"}, 2, "tcsh"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, noenv, &out, &errb)
		if code != tt.wantCode || !strings.Contains(errb.String(), tt.wantErr) {
			t.Errorf("certsync %v: exit %d, stderr %q; want %d and %q", tt.args, code, errb.String(), tt.wantCode, tt.wantErr)
		}
	}
}

// Help, version and completion behave as in kubectl, flux and cmctl: a
// command's help lists its own flags and examples, not every flag of the
// agent; --version and completion scripts go to stdout with exit 0.
func TestCLIHelpVersionCompletion(t *testing.T) {
	noenv := func(string) string { return "" }
	tests := []struct {
		args          []string
		want, wantNot []string
	}{
		{args: []string{"--help"}, want: []string{"Run the agent:", "Review a repository (offline):", "Exit status: 0", "completion", "restore"}},
		{args: []string{"--version"}, want: []string{"certsync " + version}},
		{args: []string{"version"}, want: []string{"certsync " + version}},
		{args: []string{"status", "--help"}, want: []string{"Examples:", "certsync status --repo", "-o, --output", "-n, --namespace", "-l, --selector", "--log-level"}, wantNot: []string{"--concurrency", "--http01-addr", "--signing-key-file"}},
		{args: []string{"run", "--help"}, want: []string{"--leader-elect", "--interval", "--concurrency", "--shutdown-grace"}},
		{args: []string{"reconcile", "--help"}, want: []string{"--dry-run", "--role"}, wantNot: []string{"--leader-elect", "--interval"}},
		{args: []string{"validate", "--help"}, want: []string{"-o, --output", "github"}, wantNot: []string{"--repo"}},
		{args: []string{"completion", "bash"}, want: []string{"__start_certsync"}},
		{args: []string{"completion", "zsh"}, want: []string{"#compdef certsync"}},
		{args: []string{"completion", "fish"}, want: []string{"complete -c certsync"}},
		{args: []string{"__complete", "status", "-o", ""}, want: []string{"table\njson\nyaml\n"}},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tt.args, noenv, &out, &errb); code != 0 {
			t.Errorf("certsync %v: exit %d, stderr %s", tt.args, code, errb.String())
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("certsync %v: stdout lacks %q:\n%s", tt.args, w, out.String())
			}
		}
		for _, w := range tt.wantNot {
			if strings.Contains(out.String(), w) {
				t.Errorf("certsync %v: stdout has %q, which is not this command's:\n%s", tt.args, w, out.String())
			}
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
		{name: "a choice out of its list", env: map[string]string{"CERTSYNC_ROLE": "boss"}, wantErr: `CERTSYNC_ROLE="boss" (--role): want issuer, applier or both`},
		{name: "a persistent flag", env: map[string]string{"CERTSYNC_LOG_LEVEL": "loud"}, wantErr: `CERTSYNC_LOG_LEVEL="loud" (--log-level)`},
		{name: "the command line wins", env: map[string]string{"CERTSYNC_CONCURRENCY": "abc"}, args: []string{"--concurrency", "3"},
			check: func(o *options) bool { return o.Concurrency == 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, code, stderr := parseAgentFlags(t, tt.args, tt.env)
			if tt.wantErr != "" {
				if o != nil || code != 2 || !strings.Contains(stderr, tt.wantErr) {
					t.Fatalf("parsed %v, exit %d, stderr %q; want exit 2 naming %s", o != nil, code, stderr, tt.wantErr)
				}
				return
			}
			if o == nil || !tt.check(o) {
				t.Fatalf("exit %d, stderr %q, options %+v", code, stderr, o)
			}
		})
	}
}

// parseAgentFlags parses args and env as `certsync run` does (the agent's
// flag groups, CERTSYNC_<FLAG>, the logger) and returns the options the
// command body would get: nil when it would not run.
func parseAgentFlags(t *testing.T, args []string, env map[string]string) (*options, int, string) {
	t.Helper()
	return parseFlags(t, args, env, func(cmd *cobra.Command, o *options) {
		addAgentFlags(cmd, o)
		addIntervalFlag(cmd.Flags(), o, "between passes")
	})
}

// parseFlags is parseAgentFlags with the flags add declares.
func parseFlags(t *testing.T, args []string, env map[string]string, add func(*cobra.Command, *options)) (*options, int, string) {
	t.Helper()
	var errb bytes.Buffer
	c := &cli{getenv: func(k string) string { return env[k] }, stdout: io.Discard, stderr: &errb, log: defaultOptions(func(string) string { return "" })}
	root := c.rootCommand()
	o := defaultOptions(c.getenv)
	var got *options
	cmd := &cobra.Command{Use: "agent", Args: noArgs("none"), RunE: c.action(&o, func(_ context.Context, o *options, _ *slog.Logger) int {
		got = o
		return 0
	})}
	add(cmd, &o)
	root.AddCommand(cmd)
	root.SetArgs(append([]string{"agent"}, args...))
	if _, err := root.ExecuteC(); err != nil {
		fmt.Fprintf(&errb, "certsync: %v\n", err)
		return nil, exitUsage, errb.String()
	}
	return got, c.code, errb.String()
}

// commandArgs is name followed by args without the flags that command
// does not have: the tests keep one list of the agent's flags, and status
// or restore refuse --http01-addr as a user's typo would be refused.
func commandArgs(name string, args ...string) []string {
	c := &cli{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
	cmd, _, err := c.rootCommand().Find([]string{name})
	if err != nil {
		panic(err)
	}
	out := []string{name}
	for i := 0; i < len(args); i++ {
		a := args[i]
		flagName, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") {
			out = append(out, a)
			continue
		}
		f := cmd.Flags().Lookup(flagName)
		if f == nil {
			f = cmd.InheritedFlags().Lookup(flagName)
		}
		takesValue := f == nil || f.NoOptDefVal == ""
		if f != nil {
			out = append(out, a)
			if takesValue && !hasValue && i+1 < len(args) {
				out = append(out, args[i+1])
			}
		}
		if takesValue && !hasValue {
			i++
		}
	}
	return out
}
