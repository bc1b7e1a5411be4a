package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/reconcile"
)

// cmdStatus prints one row per declared certificate, read from Git alone:
// no decryption key and no cluster access are needed.
func cmdStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, log, code, ok := parseCommand("status", args, getenv, stderr, nil)
	if !ok {
		return code
	}
	o.DryRun, o.NoApply = true, true
	res, err := reconcileOnce(ctx, o, getenv, log)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return 1
	}
	printStatus(stdout, res, time.Now())
	return reportProblems(stderr, res.Problems, "the table shows the valid declarations")
}

func printStatus(w io.Writer, res *reconcile.Result, now time.Time) {
	due := map[string]reconcile.Action{}
	for _, a := range res.Plan.Actions {
		if a.Certificate != nil && (a.Kind.Orders() || a.Kind == reconcile.Wait) {
			due[a.Certificate.Key()] = a
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tDNS NAMES\tISSUER\tNOT AFTER\tNEXT RENEWAL\tSTATE\tISSUED")
	for i := range res.Certificates {
		c := &res.Certificates[i]
		rec, ok := res.Records[committed.SecretPath(res.ClusterName(), c.Namespace, c.SecretName)]
		notAfter, next, issued := "-", "-", "-"
		state := "Ready"
		if ok {
			notAfter = committed.FormatTime(rec.NotAfter)
			next = committed.FormatTime(reconcile.RenewalTime(c, &rec, reconcile.Policy{}))
			issued = committed.FormatTime(rec.IssuedAt)
			if now.After(rec.NotAfter) {
				state = "Expired"
			}
		}
		if a, isDue := due[c.Key()]; isDue {
			state = "Due: " + a.Reason
			if a.Kind == reconcile.Wait {
				state = "Failed: " + a.Reason
			}
		} else if ok && !res.Verified[rec.Path] {
			// Read from plaintext metadata that no key checked against
			// the SOPS MAC: a hand edit would go unnoticed here.
			state += " (unverified: no key to check the file)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Namespace, c.Name, strings.Join(c.DNSNames, ","), issuerName(c), notAfter, next, state, issued)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nat commit %s\n", short(res.Head))
}

func issuerName(c *declared.Certificate) string { return c.IssuerRef.Kind + "/" + c.IssuerRef.Name }

// cmdRenew commits a renewal request that the agent acts on.
func cmdRenew(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var all bool
	var namespace, selector, name string
	o, log, code, ok := parseCommand("renew", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&all, "all", false, "request renewal of every Certificate")
		fs.StringVar(&namespace, "namespace", "", "namespace of the Certificate (default: any)")
		fs.StringVar(&selector, "l", "", "label selector, key=value[,key=value]")
	})
	if !ok {
		return code
	}
	if len(o.args) > 0 {
		name = o.args[0]
	}
	if ns, n, ok := strings.Cut(name, "/"); ok {
		namespace, name = ns, n
	}
	match, err := reconcile.MatchSelector(name, namespace, all, selector)
	if err != nil {
		fmt.Fprintf(stderr, "certsync renew: %v\n", err)
		return 2
	}
	repo, err := openRepo(ctx, o, getenv, log)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return 1
	}
	by := getenv("USER")
	if host, err := os.Hostname(); err == nil {
		by += "@" + host
	}
	if o.DryRun {
		keys, err := reconcile.RenewalTargets(ctx, repo, match)
		if err != nil {
			fmt.Fprintf(stderr, "certsync renew: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "dry run: would request renewal of %s; nothing was committed or pushed\n", strings.Join(keys, ", "))
		return 0
	}
	keys, commit, err := reconcile.RequestRenewal(ctx, repo, match, by, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "certsync renew: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "renewal requested for %s in commit %s; the agent renews on its next pass\n", strings.Join(keys, ", "), short(commit))
	return 0
}
