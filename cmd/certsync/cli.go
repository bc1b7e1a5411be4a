package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses, the same for every command (documented in `certsync --help`).
const (
	exitOK    = 0 // done; for validate: no problem found
	exitFail  = 1 // the command ran and something failed: a problem in the repository, an order, an apply, Git or the cluster unreachable
	exitUsage = 2 // the command line or a CERTSYNC_ variable is wrong: nothing was done
)

const rootLong = `certsync keeps the certificates declared in a Git repository issued,
SOPS-encrypted in that repository, and applied to Kubernetes clusters.

It reads cert-manager's Certificate, Issuer and ClusterIssuer manifests (and
Ingresses and Gateways with cert-manager's annotations), orders through ACME
or signs with a CA, commits each certificate as a SOPS-encrypted TLS Secret
under secrets/<cluster>/<namespace>/<name>.yaml, and applies it.

Every flag can also be set in the environment as CERTSYNC_<FLAG> (dashes
become underscores: CERTSYNC_REPO, CERTSYNC_DRY_RUN=true); the command line
wins, and a value that does not parse is an error, as on the command line.

Exit status: 0 done (validate: no problem); 1 the command ran and something
failed (a problem in the repository, an order, Git or the cluster); 2 the
command line or a CERTSYNC_ variable is wrong, and nothing was done.`

// cli is one invocation: where it writes, what it reads from the
// environment, and the exit status its command chose.
type cli struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	code           int
	// log holds --log-format and --log-level, shared by every command.
	log options
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := &cli{getenv: getenv, stdout: stdout, stderr: stderr, log: defaultOptions(getenv)}
	root := c.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	return c.code
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "certsync",
		Short:         "Certificates declared in Git: issued, SOPS-encrypted in Git, applied to clusters",
		Long:          rootLong,
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		// certsync alone is a usage error: it prints help to stderr and
		// exits 2, so a script that forgot its command does not pass.
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(c.stderr)
			c.code = exitUsage
			return cmd.Help()
		},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetVersionTemplate("certsync {{.Version}}\n")
	addLogFlags(root.PersistentFlags(), &c.log)
	root.AddGroup(
		&cobra.Group{ID: "agent", Title: "Run the agent:"},
		&cobra.Group{ID: "operate", Title: "Operate:"},
		&cobra.Group{ID: "review", Title: "Review a repository (offline):"},
	)
	for _, cmd := range []*cobra.Command{c.reconcileCommand(), c.runCommand()} {
		cmd.GroupID = "agent"
		root.AddCommand(cmd)
	}
	for _, cmd := range []*cobra.Command{c.statusCommand(), c.renewCommand(), c.restoreCommand(), c.exportCommand()} {
		cmd.GroupID = "operate"
		root.AddCommand(cmd)
	}
	for _, cmd := range []*cobra.Command{c.validateCommand(), c.planCommand()} {
		cmd.GroupID = "review"
		root.AddCommand(cmd)
	}
	// cobra's completion command, made now so that an unknown shell is a
	// usage error (cobra would print help and exit 0).
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "completion" {
			cmd.GroupID = "operate"
			cmd.Args = cobra.ArbitraryArgs
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				if len(args) == 0 {
					return fmt.Errorf("%s: name a shell: bash, zsh, fish or powershell", cmd.CommandPath())
				}
				return fmt.Errorf("%s: unknown shell %q: want bash, zsh, fish or powershell", cmd.CommandPath(), args[0])
			}
		}
	}
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print certsync's version",
		Args:  noArgs("version"),
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(c.stdout, "certsync", version) },
	})
	return root
}

// action makes a command's RunE: it applies CERTSYNC_<FLAG> to the flags
// not given, builds the logger, and runs body, whose result is the exit
// status. Errors returned here are usage errors (exit 2).
func (c *cli) action(o *options, body func(ctx context.Context, o *options, log *slog.Logger) int) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := applyEnvironment(cmd.Flags(), c.getenv); err != nil {
			return err
		}
		o.LogFormat, o.LogLevel = c.log.LogFormat, c.log.LogLevel
		log, err := newLogger(o, c.stderr)
		if err != nil {
			return err
		}
		o.args = args
		c.code = body(cmd.Context(), o, log)
		return nil
	}
}

// noArgs refuses positional arguments, saying what the command takes
// instead (cobra's own message reads "unknown command").
func noArgs(why string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("%s: unexpected arguments %q (%s)", cmd.CommandPath(), args, why)
		}
		return nil
	}
}

// outputFlag adds -o/--output with a fixed list of formats, offered by
// shell completion.
func outputFlag(cmd *cobra.Command, p *string, usage string, formats ...string) {
	*p = formats[0]
	cmd.Flags().VarP(newChoice(p, formats...), "output", "o", fmt.Sprintf("%s: %s", usage, orList(formats)))
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

// examples indents example lines as cobra's help expects.
func examples(lines ...string) string {
	return "  " + strings.Join(lines, "\n  ")
}
