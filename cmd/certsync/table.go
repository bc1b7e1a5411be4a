package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/reconcile"
)

// printResult shows the plan and what the pass did, one row per
// certificate, then what happened to Git. passErr is the pass's error, so
// a failed fetch or push is never reported as "up to date".
func printResult(w io.Writer, res *reconcile.Result, dryRun bool, passErr error) {
	actions := map[string]reconcile.Action{}
	for _, a := range res.Plan.Actions {
		if a.Certificate != nil {
			if _, seen := actions[a.Certificate.Key()]; !seen || a.Kind.Orders() {
				actions[a.Certificate.Key()] = a
			}
		}
	}
	issued := map[string]reconcile.Issued{}
	for _, is := range res.Issued {
		issued[is.Certificate] = is
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tSECRET\tDNS NAMES\tNOT AFTER\tACTION\tREASON")
	for i := range res.Certificates {
		c := &res.Certificates[i]
		_, rec, ok := res.Current(c)
		notAfter := "-"
		if ok {
			notAfter = committed.FormatTime(rec.NotAfter)
		}
		action, reason := "none", "up to date"
		if a, ok := actions[c.Key()]; ok {
			action, reason = string(a.Kind), a.Reason
			if dryRun {
				action = "would " + strings.ToLower(action)
			}
		}
		if is, ok := issued[c.Key()]; ok {
			notAfter = committed.FormatTime(is.NotAfter)
			action = "issued"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Key(), c.SecretName, strings.Join(c.DNSNames, ","), notAfter, action, reason)
	}
	tw.Flush()
	for _, a := range res.Plan.Actions {
		if a.Certificate == nil {
			fmt.Fprintf(w, "%s %s: %s\n", a.Kind, a.Path, a.Reason)
		}
	}
	switch {
	case dryRun:
		fmt.Fprintln(w, "\ndry run: nothing was ordered, committed, pushed or applied")
	case passErr != nil && res.Commit != "":
		fmt.Fprintf(w, "\npushed %s (%d issued), then the pass stopped with an error; what was not pushed is kept locally and pushed by the next pass\n", short(res.Commit), len(res.Issued))
	case passErr != nil:
		fmt.Fprintln(w, "\nGit was not updated: the pass stopped with an error (below)")
	case res.Commit != "":
		fmt.Fprintf(w, "\ncommitted and pushed %s (%d issued; pushes: %d)\n", short(res.Commit), len(res.Issued), res.Pushes)
	case res.Plan.HasChanges():
		fmt.Fprintf(w, "\nno commit: nothing was ready to commit (%d failed, %d interrupted)\n", res.Failed, res.Interrupted)
	default:
		fmt.Fprintln(w, "\nno commit: Git is up to date")
	}
	if res.Reused > 0 {
		fmt.Fprintf(w, "reused %d %s ordered by an earlier pass that never reached the remote\n", res.Reused, plural(res.Reused, "certificate"))
	}
	if len(res.Applied) > 0 {
		fmt.Fprintf(w, "applied to the cluster: %s\n", strings.Join(res.Applied, ", "))
	}
	if len(res.Pruned) > 0 {
		fmt.Fprintf(w, "pruned: %s\n", strings.Join(res.Pruned, ", "))
	}
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return hash
}
