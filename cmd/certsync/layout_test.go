package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certsync/certsync/committed"
	"github.com/certsync/certsync/internal/testbed"
)

// TestOutputFolderMovesWithoutOrders: certsync.yaml's output.secrets puts
// each cluster's Secrets in a folder of the user's layout. Set on a
// repository whose certificates are issued, it costs no order: the next
// pass copies each Secret to its new place, the one after prunes the old
// files (the commit says where they went), then nothing changes; the
// cluster keeps the same certificates, `certsync validate` accepts the
// layout, and a restore reads the new folder.
func TestOutputFolderMovesWithoutOrders(t *testing.T) {
	b := newBed(t, nil)
	api := b.withCluster(t)
	b.reconcileOrdering(t, len(exampleCerts))
	layout, err := committed.NewLayout("clusters/{cluster}/certificates")
	if err != nil {
		t.Fatal(err)
	}
	serials := map[string]string{}
	for _, c := range exampleCerts {
		serials[c.secret] = b.sopsDecrypt(t, committed.SecretPath("default", c.ns, c.secret)).Annotations[committed.AnnotationSerial]
	}
	b.edit(t, "commit Secrets under each cluster's folder", func(dir string) {
		writeFile(t, filepath.Join(dir, "certsync.yaml"), "apiVersion: certsync.io/v1alpha1\nkind: Settings\noutput:\n  secrets: clusters/{cluster}/certificates\n")
		rules, err := os.ReadFile(filepath.Join(dir, ".sops.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, ".sops.yaml"), strings.Replace(string(rules), "^(secrets|", "^(clusters|secrets|", 1))
	})

	// Offline review first: the layout is valid and the plan copies.
	review := filepath.Join(t.TempDir(), "review")
	gitCmd(t, b.dir, "clone", "--quiet", b.bare, review)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"validate", review}, func(string) string { return "" }, &out, &errOut); code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", code, out.String(), errOut.String())
	}

	b.reconcileOrdering(t, 0)
	for _, c := range exampleCerts {
		moved := b.sopsDecrypt(t, layout.SecretPath("default", c.ns, c.secret))
		if got := moved.Annotations[committed.AnnotationSerial]; got != serials[c.secret] {
			t.Errorf("%s/%s at its new place has serial %s, want %s", c.ns, c.secret, got, serials[c.secret])
		}
		checkLive(t, api, moved)
		b.file(t, committed.SecretPath("default", c.ns, c.secret)) // kept until the copy is in

	}

	b.reconcileOrdering(t, 0)
	msg := gitCmd(t, b.bare, "log", "-1", "--format=%B", "main")
	if paths := gitCmd(t, b.bare, "ls-tree", "-r", "--name-only", "main", "secrets/"); strings.TrimSpace(paths) != "" {
		t.Fatalf("old files left after the move:\n%s", paths)
	}
	for _, c := range exampleCerts {
		if want := "moved to " + layout.SecretPath("default", c.ns, c.secret); !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	head := b.head(t)
	b.reconcileOrdering(t, 0)
	if b.head(t) != head {
		t.Fatal("a pass after the move committed again")
	}

	// A rebuilt cluster is restored from the new folder.
	empty := testbed.StartAPIServer(t)
	var rout, rerr bytes.Buffer
	args := commandArgs("restore", append(slices.Clone(b.args), "--kubeconfig", empty.Kubeconfig, "--create-namespace")...)
	if code := run(context.Background(), args, func(k string) string { return b.env[k] }, &rout, &rerr); code != 0 ||
		!strings.Contains(rout.String(), "0 unchanged, 0 failed") {
		t.Fatalf("restore: exit %d\n%s\n%s", code, rout.String(), rerr.String())
	}
	for _, c := range exampleCerts {
		checkLive(t, empty, b.sopsDecrypt(t, layout.SecretPath("default", c.ns, c.secret)))
	}
}
