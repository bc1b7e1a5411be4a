package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/reconcile"
)

func (c *cli) statusCommand() *cobra.Command {
	o := defaultOptions(c.getenv)
	var output, namespace, selector string
	cmd := &cobra.Command{
		Use:   "status --repo URL",
		Short: "List every declared certificate: expiry, next renewal, state (from Git alone)",
		Long: `List every declared certificate with its expiry, next renewal time, the
clusters that receive it and its state (Ready, Due, Expired, Failed,
Ordering, Waiting), read from Git alone: no cluster is needed, and no key
(with one, each committed file is also checked against its MAC).`,
		Example: examples(
			"certsync status --repo https://git.example.com/platform/certs.git",
			"certsync status --repo ./certs -n shop -o json",
			"certsync status --repo ./certs -l team=payments -o yaml",
		),
		Args: noArgs("it lists every certificate; narrow with -n or -l"),
	}
	outputFlag(cmd, &output, "output format", "table", "json", "yaml")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "only certificates in this namespace")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "only certificates with these labels, key=value[,key=value]")
	cmd.RunE = c.action(&o, func(ctx context.Context, o *options, log *slog.Logger) int {
		match, err := reconcile.MatchSelector("", namespace, selector == "", selector)
		if err != nil {
			fmt.Fprintf(c.stderr, "certsync status: %v\n", err)
			return exitUsage
		}
		o.DryRun, o.NoApply = true, true
		res, err := reconcileOnce(ctx, o, c.getenv, log)
		if err != nil {
			fmt.Fprintf(c.stderr, "certsync: %v\n", err)
			return exitFail
		}
		rows := statusRows(res, time.Now(), match)
		doc := statusJSON{Commit: res.Head, Cluster: res.ClusterName(), Certificates: rows}
		if err := writeOutput(c.stdout, output, doc, func(w io.Writer) { printStatus(w, res.Head, rows) }); err != nil {
			fmt.Fprintf(c.stderr, "certsync: %v\n", err)
			return exitFail
		}
		return reportProblems(c.stderr, res.Problems, "the table shows the valid declarations")
	})
	addRepoFlags(cmd.Flags(), &o)
	addKeyFlags(cmd.Flags(), &o)
	addClusterNameFlag(cmd.Flags(), &o)
	return cmd
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

// statusRows are the rows of the certificates match selects.
func statusRows(res *reconcile.Result, now time.Time, match func(*declared.Certificate) bool) []statusRow {
	due := map[string]reconcile.Action{}
	for _, a := range res.Plan.Actions {
		if a.Certificate != nil && (a.Kind.Orders() || a.Kind == reconcile.Wait) {
			due[a.Certificate.Key()] = a
		}
	}
	rows := make([]statusRow, 0, len(res.Certificates))
	for i := range res.Certificates {
		c := &res.Certificates[i]
		if !match(c) {
			continue
		}
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

func (c *cli) renewCommand() *cobra.Command {
	o := defaultOptions(c.getenv)
	var all bool
	var namespace, selector string
	cmd := &cobra.Command{
		Use:   "renew [NAMESPACE/]NAME | --all | -l key=value",
		Short: "Commit a renewal request; the agent renews on its next pass",
		Long: `Commit a renewal request for certificates (cmctl renew's counterpart): a
file under requests/renew/ with a Renew-Requested trailer, so the request is
reviewed and audited like any change. The agent renews them on its next pass
and removes the request.`,
		Example: examples(
			"certsync renew shop/web --repo https://git.example.com/platform/certs.git",
			"certsync renew web -n shop --repo ./certs",
			"certsync renew -l team=payments --repo ./certs --dry-run",
			"certsync renew --all --repo ./certs",
		),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("%s: one certificate at a time, got %q (or use --all or -l)", cmd.CommandPath(), args)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "request renewal of every Certificate")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of the Certificate (default: any)")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector, key=value[,key=value]")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "say which certificates would be renewed; commit nothing")
	cmd.RunE = c.action(&o, func(ctx context.Context, o *options, log *slog.Logger) int {
		var name string
		if len(o.args) > 0 {
			name = o.args[0]
		}
		ns := namespace
		if n, rest, ok := strings.Cut(name, "/"); ok {
			ns, name = n, rest
		}
		match, err := reconcile.MatchSelector(name, ns, all, selector)
		if err != nil {
			fmt.Fprintf(c.stderr, "certsync renew: %v\n", err)
			return exitUsage
		}
		repo, err := openRepo(ctx, o, c.getenv, log)
		if err != nil {
			fmt.Fprintf(c.stderr, "certsync: %v\n", err)
			return exitFail
		}
		by := c.getenv("USER")
		if host, err := os.Hostname(); err == nil {
			by += "@" + host
		}
		if o.DryRun {
			keys, err := reconcile.RenewalTargets(ctx, repo, match)
			if err != nil {
				fmt.Fprintf(c.stderr, "certsync renew: %v\n", err)
				return exitFail
			}
			fmt.Fprintf(c.stdout, "dry run: would request renewal of %s; nothing was committed or pushed\n", strings.Join(keys, ", "))
			return exitOK
		}
		keys, commit, err := reconcile.RequestRenewal(ctx, repo, match, by, time.Now())
		if err != nil {
			fmt.Fprintf(c.stderr, "certsync renew: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(c.stdout, "renewal requested for %s in commit %s; the agent renews on its next pass\n", strings.Join(keys, ", "), short(commit))
		return exitOK
	})
	addRepoFlags(cmd.Flags(), &o)
	addCommitFlags(cmd.Flags(), &o)
	return cmd
}

// writeOutput writes doc as -o asks: json and yaml are the same document
// (yaml through sigs.k8s.io/yaml, so field names match); anything else is
// the command's own text form.
func writeOutput(w io.Writer, format string, doc any, text func(io.Writer)) error {
	switch format {
	case "json":
		return writeJSON(w, doc)
	case "yaml":
		b, err := yaml.Marshal(doc)
		if err != nil {
			return fmt.Errorf("write yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	text(w)
	return nil
}

// writeJSON is every command's -o json: indented, one document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
