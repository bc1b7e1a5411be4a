package main

import (
	"context"
	"encoding/json"
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
	var output string
	o, log, code, ok := parseCommand("status", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&output, "o", "table", "output format: table or json")
	})
	if !ok {
		return code
	}
	if len(o.args) > 0 {
		fmt.Fprintf(stderr, "certsync status: unexpected arguments %q (it lists every certificate)\n", o.args)
		return 2
	}
	if output != "table" && output != "json" {
		fmt.Fprintf(stderr, "certsync status: -o %q: want table or json\n", output)
		return 2
	}
	o.DryRun, o.NoApply = true, true
	res, err := reconcileOnce(ctx, o, getenv, log)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return 1
	}
	rows := statusRows(res, time.Now())
	if output == "json" {
		if err := writeJSON(stdout, statusJSON{Commit: res.Head, Cluster: res.ClusterName(), Certificates: rows}); err != nil {
			fmt.Fprintf(stderr, "certsync: %v\n", err)
			return 1
		}
	} else {
		printStatus(stdout, res.Head, rows)
	}
	return reportProblems(stderr, res.Problems, "the table shows the valid declarations")
}

// statusRow is one certificate in `certsync status`.
type statusRow struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	DNSNames    []string   `json:"dnsNames"`
	Issuer      string     `json:"issuer"`
	Clusters    []string   `json:"clusters"`
	NotAfter    *time.Time `json:"notAfter,omitempty"`
	NextRenewal *time.Time `json:"nextRenewal,omitempty"`
	IssuedAt    *time.Time `json:"issuedAt,omitempty"`
	// State is Ready, Expired, Due, Failed, Ordering (another agent holds
	// its claim) or Waiting (for the CA that signs it); Reason says why.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Verified is false when no key checked the committed file.
	Verified bool `json:"verified"`
}

type statusJSON struct {
	Commit       string      `json:"commit"`
	Cluster      string      `json:"cluster"`
	Certificates []statusRow `json:"certificates"`
}

func statusRows(res *reconcile.Result, now time.Time) []statusRow {
	due := map[string]reconcile.Action{}
	for _, a := range res.Plan.Actions {
		if a.Certificate != nil && (a.Kind.Orders() || a.Kind == reconcile.Wait) {
			due[a.Certificate.Key()] = a
		}
	}
	rows := make([]statusRow, 0, len(res.Certificates))
	for i := range res.Certificates {
		c := &res.Certificates[i]
		row := statusRow{Namespace: c.Namespace, Name: c.Name, DNSNames: c.DNSNames, Issuer: issuerName(c), Clusters: res.Clusters(c), State: "Ready"}
		_, rec, ok := res.Current(c)
		if ok {
			notAfter, next, issued := rec.NotAfter, reconcile.RenewalTime(c, &rec, reconcile.Policy{}), rec.IssuedAt
			row.NotAfter, row.NextRenewal, row.IssuedAt = &notAfter, &next, &issued
			row.Verified = res.Verified[rec.Path]
			if now.After(rec.NotAfter) {
				row.State = "Expired"
			}
		}
		if a, isDue := due[c.Key()]; isDue {
			row.State, row.Reason = "Due", a.Reason
			switch {
			case a.HeldBy != "":
				row.State = "Ordering"
			case a.WaitsFor != "":
				row.State = "Waiting"
			case a.Kind == reconcile.Wait:
				row.State = "Failed"
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func printStatus(w io.Writer, head string, rows []statusRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tDNS NAMES\tISSUER\tCLUSTERS\tNOT AFTER\tNEXT RENEWAL\tSTATE\tISSUED")
	for _, r := range rows {
		state := r.State
		switch {
		case r.Reason != "":
			state += ": " + r.Reason
		case r.NotAfter != nil && !r.Verified:
			// Read from plaintext metadata that no key checked against
			// the SOPS MAC: a hand edit would go unnoticed here.
			state += " (unverified: no key to check the file)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, strings.Join(r.DNSNames, ","), r.Issuer, strings.Join(r.Clusters, ","), formatTime(r.NotAfter), formatTime(r.NextRenewal), state, formatTime(r.IssuedAt))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nat commit %s\n", short(head))
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return committed.FormatTime(*t)
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

// writeJSON is every command's -o json: indented, one document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
