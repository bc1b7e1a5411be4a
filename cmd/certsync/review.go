package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/spf13/cobra"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/declared"
	"github.com/certsync/certsync/issuer"
	"github.com/certsync/certsync/reconcile"
)

// Pull-request review: `certsync validate` and `certsync plan` read a
// checked-out repository from disk and need nothing else — no Git server,
// no CA, no cluster, no decryption key — so they run on any CI runner
// against the pull request's own files.

// reviewPass plans a working tree offline, as a dry-run pass would.
func reviewPass(ctx context.Context, dir string, o *options, log *slog.Logger) (*reconcile.Result, *worktree, error) {
	tree, err := openWorktree(dir)
	if err != nil {
		return nil, nil, err
	}
	rec, err := reconcile.New(reconcile.Config{
		Repo:        worktreeRepo{tree},
		Encryption:  encrypterFactory(nil, log),
		Issuers:     offlineIssuers,
		ClusterName: o.Cluster,
		Clock:       o.clock,
		Policy:      reconcile.Policy{MaxPruneShare: o.MaxPruneShare, ForcePrune: o.ForcePrune},
		Logger:      log,
	})
	if err != nil {
		return nil, nil, err
	}
	res, err := rec.Reconcile(ctx, reconcile.Options{DryRun: true})
	return res, tree, err
}

// offlineIssuers is the issuer factory of validate and plan: they never
// reach a CA (a dry-run pass builds no issuer; this says so if one tried).
func offlineIssuers(context.Context, *declared.Issuer, crypto.Signer, issuer.SecretGetter) (issuer.Issuer, error) {
	return nil, errors.New("validate and plan never contact a CA")
}

// finding is one problem, located in the repository when it can be. Line
// and Column are 1-based, Column in bytes (declared.Source); either is
// left out when unknown (a YAML syntax error has no column).
type finding struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
}

// located reads file:line: or file:line:col: off errors that are not a
// declared.Problem (certsync.yaml's, delivery's, policy's).
var located = regexp.MustCompile(`^([^\s:]+):(\d+)(?::(\d+))?: (.*)$`)

func findingOf(err error) finding {
	var p declared.Problem
	if errors.As(err, &p) && p.Source.File != "" {
		msg := strings.TrimPrefix(err.Error(), p.Source.String()+": ")
		return finding{File: p.Source.File, Line: p.Source.Line, Column: p.Source.Column, Message: msg}
	}
	msg := err.Error()
	if m := located.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[2])
		column, _ := strconv.Atoi(m[3]) // 0 when absent
		return finding{File: m[1], Line: line, Column: column, Message: m[4]}
	}
	if file, rest, ok := strings.Cut(msg, ": "); ok && strings.HasSuffix(file, ".yaml") && !strings.ContainsAny(file, " \t") {
		return finding{File: file, Message: rest}
	}
	return finding{Message: msg}
}

// String is file:line:col: message, as Go's compilers print their
// errors, with what is unknown left out.
func (f finding) String() string {
	switch {
	case f.Line > 0 && f.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", f.File, f.Line, f.Column, f.Message)
	case f.Line > 0:
		return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Message)
	case f.File != "":
		return f.File + ": " + f.Message
	}
	return f.Message
}

// github renders the finding as a GitHub Actions workflow command
// (::error file=…,line=…,col=…,title=…::message), which annotates the
// pull request's diff at the line and column.
func (f finding) github() string {
	// A property value also escapes the separators of the property list,
	// as GitHub's toolkit does (a path may hold a comma).
	escData := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	escProp := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
	var props []string
	if f.File != "" {
		props = append(props, "file="+escProp.Replace(f.File))
		if f.Line > 0 {
			props = append(props, "line="+strconv.Itoa(f.Line))
			if f.Column > 0 {
				props = append(props, "col="+strconv.Itoa(f.Column))
			}
		}
	}
	props = append(props, "title=certsync")
	return "::error " + strings.Join(props, ",") + "::" + escData.Replace(f.Message)
}

// cmdValidate checks a repository offline: every declaration, certsync.yaml,
// the committed files' metadata, and that .sops.yaml encrypts every file a
// pass would write. Exit 1 on any problem.
func (c *cli) validateCommand() *cobra.Command {
	o := defaultOptions(c.getenv)
	var output string
	cmd := &cobra.Command{
		Use:   "validate [DIR...]",
		Short: "Check a checked-out repository offline; exit 1 on any problem",
		Long: `Check checked-out repositories offline (no Git server, CA, cluster or
key): every declaration with cert-manager's rules, certsync.yaml, the
committed files' metadata, and that .sops.yaml encrypts every file a pass
would write. Problems are reported as file:line:col (1-based; the column
in bytes, left out when unknown); exit 1 on any.`,
		Example: examples(
			"certsync validate                     # the repository in the current folder",
			"certsync validate ./certs -o github   # annotations in a GitHub Actions workflow",
			"certsync validate a b -o yaml",
		),
		Args: cobra.ArbitraryArgs,
	}
	outputFlag(cmd, &output, "output format (github: workflow annotations)", "text", "json", "yaml", "github")
	cmd.RunE = c.action(&o, func(ctx context.Context, o *options, log *slog.Logger) int {
		return validateRepositories(ctx, o, log, output, c.stdout, c.stderr)
	})
	addClusterNameFlag(cmd.Flags(), &o)
	return cmd
}

// validateRepositories checks each folder of o.args (default ".") and
// reports as output asks.
func validateRepositories(ctx context.Context, o *options, log *slog.Logger, output string, stdout, stderr io.Writer) int {
	dirs := o.args
	if len(dirs) == 0 {
		dirs = []string{"."}
	}
	type report struct {
		Repository   string    `json:"repository"`
		Certificates int       `json:"certificates"`
		Problems     []finding `json:"problems"`
		Warnings     []string  `json:"warnings"`
	}
	var reports []report
	failed := false
	for _, dir := range dirs {
		rep := report{Repository: dir, Problems: []finding{}, Warnings: []string{}}
		res, tree, err := reviewPass(ctx, dir, o, log)
		if err != nil {
			rep.Problems = append(rep.Problems, findingOf(err))
		} else {
			rep.Certificates = len(res.Certificates)
			for _, p := range res.Problems {
				rep.Problems = append(rep.Problems, findingOf(p))
			}
			for _, p := range encryptable(ctx, tree, res.Plan, log) {
				rep.Problems = append(rep.Problems, findingOf(p))
			}
			for _, p := range exposedFiles(tree) {
				rep.Problems = append(rep.Problems, findingOf(p))
			}
			rep.Warnings = append(rep.Warnings, res.Plan.Warnings...)
		}
		failed = failed || len(rep.Problems) > 0
		reports = append(reports, rep)
	}
	switch output {
	case "json", "yaml":
		if err := writeOutput(stdout, output, reports, nil); err != nil {
			fmt.Fprintf(stderr, "certsync: %v\n", err)
			return exitFail
		}
	case "github":
		for _, rep := range reports {
			for _, f := range rep.Problems {
				fmt.Fprintln(stdout, f.github())
			}
		}
	default:
		for _, rep := range reports {
			for _, f := range rep.Problems {
				fmt.Fprintln(stdout, f)
			}
			for _, w := range rep.Warnings {
				fmt.Fprintln(stdout, "warning: "+w)
			}
			if len(rep.Problems) == 0 {
				fmt.Fprintf(stdout, "%s: ok: %d %s valid\n", rep.Repository, rep.Certificates, plural(rep.Certificates, "certificate"))
			} else {
				fmt.Fprintf(stdout, "%s: %d %s (%d valid %s)\n", rep.Repository, len(rep.Problems), plural(len(rep.Problems), "problem"), rep.Certificates, plural(rep.Certificates, "certificate"))
			}
		}
	}
	if failed {
		return 1
	}
	return 0
}

// encryptable checks that .sops.yaml gives every file the plan would write
// a rule that encrypts its data, as the agent checks before ordering.
func encryptable(ctx context.Context, tree *worktree, plan reconcile.Plan, log *slog.Logger) []error {
	sopsConfig, err := tree.ReadFile(reconcile.SOPSConfigPath)
	if err != nil {
		sopsConfig = nil
	}
	enc, err := encrypterFactory(nil, log)(sopsConfig)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", reconcile.SOPSConfigPath, err)}
	}
	probe, err := yaml.Marshal(&corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: "certsync-probe"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSPrivateKeyKey: []byte("probe")}})
	if err != nil {
		return []error{err}
	}
	var problems []error
	seen := map[string]bool{}
	for _, a := range plan.Actions {
		if !a.Kind.Orders() && a.Kind != reconcile.Copy && a.Kind != reconcile.Reencrypt && a.Kind != reconcile.Rerender {
			continue
		}
		for _, path := range append([]string{a.Path}, a.Copies...) {
			if seen[path] {
				continue
			}
			seen[path] = true
			if _, err := enc.Encrypt(ctx, path, probe); err != nil {
				problems = append(problems, fmt.Errorf("%s: %s would write %s, which %s cannot encrypt: %w", reconcile.SOPSConfigPath, a.Subject(), path, reconcile.SOPSConfigPath, err))
			}
		}
	}
	return problems
}

// planAction is one action of `certsync plan -o json`.
type planAction struct {
	Kind        string   `json:"kind"`
	Certificate string   `json:"certificate,omitempty"`
	Source      string   `json:"source,omitempty"`
	Path        string   `json:"path"`
	Copies      []string `json:"copies,omitempty"`
	From        string   `json:"from,omitempty"`
	Reason      string   `json:"reason"`
}

// cmdPlan shows what a reconcile of a checked-out repository would do,
// and why, as a table, as markdown for a pull-request comment, or as JSON.
// Like validate it is offline; the cluster's side (applies, Secret
// prunes) is the agent's to see.
func (c *cli) planCommand() *cobra.Command {
	o := defaultOptions(c.getenv)
	var output string
	cmd := &cobra.Command{
		Use:   "plan [DIR]",
		Short: "Show what a pass would order, copy, re-encrypt or prune, and why (offline)",
		Long: `Show what a reconcile of a checked-out repository would do, and why: which
certificates it would order or renew, copy to another cluster, re-encrypt or
prune. Offline, like validate; the cluster's side (applies, Secret prunes)
is the agent's to see. -o markdown is a pull-request comment.`,
		Example: examples(
			"certsync plan",
			"certsync plan ./certs -o markdown > plan.md",
			"certsync plan -o yaml",
		),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("%s: one repository folder, got %q", cmd.CommandPath(), args)
			}
			return nil
		},
	}
	outputFlag(cmd, &output, "output format (markdown: a pull-request comment)", "table", "markdown", "json", "yaml")
	cmd.Flags().BoolVar(&o.ForcePrune, "force-prune", o.ForcePrune, "plan prunes beyond --max-prune-share, as reconcile --force-prune would")
	cmd.Flags().Float64Var(&o.MaxPruneShare, "max-prune-share", o.MaxPruneShare, "largest share of committed Secrets pruned in one pass")
	cmd.RunE = c.action(&o, func(ctx context.Context, o *options, log *slog.Logger) int {
		return planRepository(ctx, o, log, output, c.stdout, c.stderr)
	})
	addClusterNameFlag(cmd.Flags(), &o)
	return cmd
}

// planRepository prints the plan of the repository in o.args[0] (default
// ".") as output asks.
func planRepository(ctx context.Context, o *options, log *slog.Logger, output string, stdout, stderr io.Writer) int {
	dir := "."
	if len(o.args) == 1 {
		dir = o.args[0]
	}
	res, _, err := reviewPass(ctx, dir, o, log)
	if err != nil {
		fmt.Fprintf(stderr, "certsync plan: %v\n", err)
		return 1
	}
	actions := make([]planAction, 0, len(res.Plan.Actions))
	for _, a := range res.Plan.Actions {
		pa := planAction{Kind: string(a.Kind), Path: a.Path, Copies: a.Copies, From: a.From, Reason: a.Reason}
		if a.Certificate != nil {
			pa.Certificate, pa.Source = a.Certificate.Key(), a.Certificate.Source.String()
		}
		actions = append(actions, pa)
	}
	problems := make([]finding, 0, len(res.Problems))
	for _, p := range res.Problems {
		problems = append(problems, findingOf(p))
	}
	switch output {
	case "json", "yaml":
		warnings := append([]string{}, res.Plan.Warnings...)
		if err := writeOutput(stdout, output, map[string]any{"actions": actions, "problems": problems, "warnings": warnings}, nil); err != nil {
			fmt.Fprintf(stderr, "certsync: %v\n", err)
			return exitFail
		}
	case "markdown":
		printPlanMarkdown(stdout, actions, problems, res.Plan.Warnings)
	default:
		printResult(stdout, res, true, nil)
		for _, f := range problems {
			fmt.Fprintln(stderr, "problem: "+f.String())
		}
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}

// printPlanMarkdown writes the plan as a pull-request comment.
func printPlanMarkdown(w io.Writer, actions []planAction, problems []finding, warnings []string) {
	counts := map[string]int{}
	for _, a := range actions {
		counts[a.Kind]++
	}
	var summary []string
	for _, k := range []reconcile.ActionKind{reconcile.Issue, reconcile.Reissue, reconcile.Renew, reconcile.Rerender, reconcile.Copy, reconcile.Reencrypt, reconcile.PruneFile, reconcile.Wait} {
		if n := counts[string(k)]; n > 0 {
			summary = append(summary, fmt.Sprintf("%d %s", n, planWords[k]))
		}
	}
	fmt.Fprintln(w, "### certsync plan")
	fmt.Fprintln(w)
	switch {
	case len(summary) == 0 && len(problems) == 0:
		fmt.Fprintln(w, "No changes: every certificate is committed and up to date.")
	case len(summary) == 0:
		fmt.Fprintln(w, "No changes planned.")
	default:
		fmt.Fprintf(w, "**%s** (each order is one request to the CA; re-renders, copies and re-encryptions order nothing).\n", strings.Join(summary, ", "))
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| action | certificate | file | reason |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, a := range actions {
			file := "`" + a.Path + "`"
			if len(a.Copies) > 0 {
				file += fmt.Sprintf(" and %d more %s", len(a.Copies), plural(len(a.Copies), "cluster"))
			}
			cert := a.Certificate
			if a.Source != "" {
				cert += " (`" + a.Source + "`)"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", a.Kind, mdCell(cert), mdCell(file), mdCell(a.Reason))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "**%d %s** — these certificates are left out until fixed, and nothing is pruned:\n\n", len(problems), plural(len(problems), "problem"))
		for _, f := range problems {
			fmt.Fprintf(w, "- %s\n", mdCell(f.String()))
		}
	}
	for _, warning := range warnings {
		fmt.Fprintf(w, "\n> %s\n", mdCell(warning))
	}
}

var planWords = map[reconcile.ActionKind]string{
	reconcile.Issue: "to issue", reconcile.Reissue: "to re-issue", reconcile.Renew: "to renew", reconcile.Rerender: "to re-render",
	reconcile.Copy: "to copy to another cluster", reconcile.Reencrypt: "to re-encrypt",
	reconcile.PruneFile: "to prune", reconcile.Wait: "waiting",
}

// mdCell keeps a value inside one markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

// exposedFiles finds keys committed in the clear in certsync's folders: a
// pull request that adds one must not merge (the agent would replace the
// key, but it is already in the history).
func exposedFiles(tree *worktree) []error {
	var problems []error
	layout := treeLayout(tree)
	for _, path := range tree.Paths() {
		if !layout.IsOutput(path) {
			continue
		}
		content, err := tree.ReadFile(path)
		if err != nil {
			continue
		}
		keys, err := committed.Exposed(path, content)
		if err != nil || len(keys) == 0 {
			continue // unreadable files are reported by the pass
		}
		problems = append(problems, fmt.Errorf("%s: %s committed in plaintext: anyone who can read the repository has this key; encrypt it with sops (the agent re-issues certificates with a new key) and treat the key as exposed", path, strings.Join(keys, ", ")))
	}
	return problems
}
