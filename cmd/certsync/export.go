package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/export"
	"github.com/certsync/certsync/reconcile"
	"github.com/certsync/certsync/render"
)

// cmdExport writes one certificate from Git as PEM files for consumers
// outside Kubernetes; with --watch it follows renewals, running --hook
// after each change (e.g. a reload of the web server).
func (c *cli) exportCommand() *cobra.Command {
	o := defaultOptions(c.getenv)
	var out, hook string
	var watch bool
	cmd := &cobra.Command{
		Use:   "export NAMESPACE/NAME --out DIR",
		Short: "Write a certificate as PEM files for VMs, load balancers and appliances",
		Long: `Decrypt one certificate from Git and write tls.crt, tls.key (0600), ca.crt
and tls-combined.pem (key then chain, 0600) into --out, atomically and only
when they changed. NAME is the Certificate or its secretName. With --watch
it follows renewals, running --hook after each change.`,
		Example: examples(
			"certsync export shop/web --out /etc/nginx/tls --repo https://git.example.com/platform/certs.git",
			"certsync export shop/web --out /etc/nginx/tls --repo ./certs --watch --interval 10m --hook 'systemctl reload nginx'",
		),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("usage: certsync export NAMESPACE/NAME --out DIR [--watch] [--hook PROGRAM] (NAME: the Certificate or its secretName), got %d arguments", len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write tls.crt, tls.key (0600), ca.crt and tls-combined.pem (0600) into")
	cmd.Flags().BoolVar(&watch, "watch", false, "keep running: fetch every --interval and rewrite the files when the certificate changed")
	cmd.Flags().StringVar(&hook, "hook", "", "program (and arguments, space-separated) run after the files changed, e.g. \"systemctl reload nginx\"; it gets CERTSYNC_EXPORT_DIR and CERTSYNC_EXPORT_SERIAL")
	addIntervalFlag(cmd.Flags(), &o, "with --watch, time between fetches")
	cmd.RunE = c.action(&o, func(ctx context.Context, o *options, log *slog.Logger) int {
		return exportCertificate(ctx, o, log, out, hook, watch, c.getenv, c.stdout, c.stderr)
	})
	addRepoFlags(cmd.Flags(), &o)
	addKeyFlags(cmd.Flags(), &o)
	addClusterNameFlag(cmd.Flags(), &o)
	return cmd
}

// exportCertificate writes o.args[0] as PEM files into out, once or, with
// watch, after every change.
func exportCertificate(ctx context.Context, o *options, log *slog.Logger, out, hook string, watch bool, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(o.args) != 1 || out == "" {
		fmt.Fprintln(stderr, "usage: certsync export NAMESPACE/NAME --out DIR [--watch] [--hook PROGRAM] (NAME: the Certificate or its secretName)")
		return 2
	}
	name := o.args[0]
	identities, err := ageIdentities(o, getenv)
	if err == nil && len(identities) == 0 {
		err = errors.New("no age key: exporting decrypts the certificate (--age-key-file, SOPS_AGE_KEY_FILE or SOPS_AGE_KEY)")
	}
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return 2
	}
	repo, err := openRepo(ctx, o, getenv, log)
	if err != nil {
		fmt.Fprintf(stderr, "certsync: %v\n", err)
		return 1
	}
	for {
		serial, changed, err := exportOnce(ctx, repo, identities, log, o.Cluster, name, out)
		switch {
		case err != nil && !watch:
			fmt.Fprintf(stderr, "certsync: export %s: %v\n", name, err)
			return 1
		case err != nil:
			log.Error("export failed; trying again next interval", "certificate", name, "error", err)
		case changed:
			fmt.Fprintf(stdout, "exported %s (serial %s) to %s\n", name, serial, out)
			if hook != "" {
				if err := runHook(ctx, hook, out, serial, stdout, stderr); err != nil {
					log.Error("hook failed", "hook", hook, "error", err)
					if !watch {
						return 1
					}
				}
			}
		default:
			log.Debug("certificate unchanged", "certificate", name, "serial", serial)
		}
		if !watch {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(o.Interval):
		}
	}
}

// exportOnce fetches the repository and writes name's files.
func exportOnce(ctx context.Context, repo gitRepository, identities []byte, log *slog.Logger, clusterName, name, out string) (serial string, changed bool, err error) {
	tree, err := repo.Fetch(ctx)
	if err != nil {
		return "", false, fmt.Errorf("fetch repository: %w", err)
	}
	path, rec, err := findCommitted(tree, clusterName, name)
	if err != nil {
		return "", false, err
	}
	dec, err := treeDecrypter(tree, identities, log)
	if err != nil {
		return "", false, err
	}
	content, err := tree.ReadFile(path)
	if err != nil {
		return "", false, err
	}
	plain, err := dec.Decrypt(ctx, path, content)
	if err != nil {
		return "", false, fmt.Errorf("decrypt %s: %w", path, err)
	}
	s, err := render.Parse(plain)
	if err != nil {
		return "", false, err
	}
	changed, err = export.Write(out, s)
	return rec.Serial, changed, err
}

// findCommitted finds the committed Secret of a Certificate
// ("namespace/name") or of a Secret name ("namespace/secretName") from the
// plaintext metadata alone.
func findCommitted(tree reconcile.Tree, clusterName, name string) (string, committed.Certificate, error) {
	ns, n, ok := strings.Cut(name, "/")
	if !ok || ns == "" || n == "" {
		return "", committed.Certificate{}, fmt.Errorf("%q: want NAMESPACE/NAME", name)
	}
	layout := treeLayout(tree)
	// NAME is the Secret's name: its file is known.
	path := layout.SecretPath(clusterName, ns, n)
	if content, err := tree.ReadFile(path); err == nil {
		rec, err := layout.Read(path, content)
		return path, rec, err
	}
	prefix := layout.ClusterPrefix(clusterName) + ns + "/"
	for _, path := range tree.Paths() {
		if !strings.HasPrefix(path, prefix) {
			continue
		}
		content, err := tree.ReadFile(path)
		if err != nil {
			continue
		}
		if rec, err := layout.Read(path, content); err == nil && rec.Certificate == name {
			return path, rec, nil
		}
	}
	return "", committed.Certificate{}, fmt.Errorf("no certificate %s committed for cluster %s (is it issued yet? certsync status lists them)", name, clusterName)
}

// runHook runs the operator's program after the files changed.
func runHook(ctx context.Context, hook, dir, serial string, stdout, stderr io.Writer) error {
	argv := strings.Fields(hook)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "CERTSYNC_EXPORT_DIR="+dir, "CERTSYNC_EXPORT_SERIAL="+serial)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", hook, err)
	}
	return nil
}
