// Command certsync-image builds certsync's container image without Docker:
// it cross-compiles certsync for each platform (static, reproducible flags)
// and assembles a multi-platform OCI image from scratch with
// internal/ociimage — the binary, CA roots, a non-root user, nothing else.
// `make image` runs it:
//
//	go run ./cmd/certsync-image --out bin/image --version v1.2.0
//
// The result is an OCI image layout directory (and with --tar an OCI
// archive). Push it with `crane push bin/image REF` (no --index: that
// would push index.json, which wraps the image index) or
// `skopeo copy --all oci:bin/image:TAG docker://REF`. Building the same
// commit again gives the same index digest: timestamps come from
// SOURCE_DATE_EPOCH or the commit time of HEAD.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/certsync/certsync/internal/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// config is what the flags say.
type config struct {
	out, tar, version, pkg, revision string
	platforms                        []v1.Platform
}

// run is main without the process: it returns the exit status (2 for a
// usage error, 1 when the build failed).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c, status, ok := parseFlags(ctx, args, stderr)
	if !ok {
		return status
	}
	if err := build(ctx, c, getenv, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "certsync-image: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(ctx context.Context, args []string, stderr io.Writer) (config, int, bool) {
	var c config
	var platforms string
	fs := flag.NewFlagSet("certsync-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.out, "out", "bin/image", "OCI image layout directory to write (replaced when it is one already)")
	fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated platforms to build")
	fs.StringVar(&c.version, "version", "", "certsync version, stamped into the binary and the labels (default: git describe --tags --always --dirty, else dev)")
	fs.StringVar(&c.tar, "tar", "", "also write the layout as an OCI archive to this file (podman load, skopeo oci-archive:, containerd import)")
	fs.StringVar(&c.revision, "revision", "", "Git commit for the org.opencontainers.image.revision label (default: git rev-parse HEAD, else none)")
	fs.StringVar(&c.pkg, "package", "./cmd/certsync", "main package to put in the image")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return c, 0, false
		}
		return c, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "certsync-image: unexpected arguments %q: every setting is a flag\n", fs.Args())
		return c, 2, false
	}
	for _, p := range strings.Split(platforms, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pl, err := v1.ParsePlatform(p)
		if err == nil {
			err = ociimage.CheckPlatform(*pl)
		}
		if err != nil {
			fmt.Fprintf(stderr, "certsync-image: --platforms %q: %v\n", p, err)
			return c, 2, false
		}
		c.platforms = append(c.platforms, *pl)
	}
	if len(c.platforms) == 0 {
		fmt.Fprintln(stderr, "certsync-image: --platforms is empty: name at least one, e.g. linux/amd64")
		return c, 2, false
	}
	if c.version == "" {
		c.version = describe(ctx)
	}
	return c, 0, true
}

// build compiles the binaries, assembles the image, writes it and prints
// its digest and sizes.
func build(ctx context.Context, c config, getenv func(string) string, stdout, stderr io.Writer) error {
	created, dateSource, err := ociimage.SourceDate(ctx, ".", getenv)
	if err != nil {
		return err
	}
	revision := c.revision
	if revision == "" {
		revision = ociimage.Revision(ctx, ".")
	}
	fmt.Fprintf(stderr, "certsync-image: version %s, revision %s, timestamps %s (%s)\n",
		c.version, orNone(revision), created.Format(time.RFC3339), dateSource)

	tmp, err := os.MkdirTemp("", "certsync-image-")
	if err != nil {
		return fmt.Errorf("temporary directory for the binaries: %w", err)
	}
	defer os.RemoveAll(tmp)

	gb := ociimage.GoBuild{Package: c.pkg, Version: c.version}
	var binaries []ociimage.Binary
	for _, p := range c.platforms {
		out := filepath.Join(tmp, strings.ReplaceAll(p.String(), "/", "-"), "certsync")
		fmt.Fprintf(stderr, "certsync-image: building %s for %s …\n", c.pkg, p)
		start := time.Now()
		if err := gb.Build(ctx, p, out); err != nil {
			return err
		}
		st, err := os.Stat(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "certsync-image: built %s in %s (%s)\n", p, time.Since(start).Round(100*time.Millisecond), mb(st.Size()))
		binaries = append(binaries, ociimage.Binary{Platform: p, Path: out})
	}

	fmt.Fprintf(stderr, "certsync-image: assembling %d image(s) …\n", len(binaries))
	start := time.Now()
	res, err := ociimage.Build(ctx, ociimage.Options{
		Binaries: binaries,
		Version:  c.version,
		Revision: revision,
		Created:  created,
	})
	if err != nil {
		return err
	}
	tag := ociimage.Tag(c.version)
	if err := ociimage.WriteLayout(c.out, res.Index, tag); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "certsync-image: wrote the OCI image layout %s (tag %s) in %s\n", c.out, tag, time.Since(start).Round(100*time.Millisecond))
	if c.tar != "" {
		if err := ociimage.WriteArchive(c.tar, c.out, created); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "certsync-image: wrote the OCI archive %s\n", c.tar)
	}

	fmt.Fprintf(stdout, "index %s\n", res.Digest)
	for _, img := range res.Images {
		fmt.Fprintf(stdout, "  %-12s %s  download %s, unpacked %s\n", img.Platform, img.Digest, mb(img.DownloadSize), mb(img.UnpackedSize))
	}
	return nil
}

// describe is the version when --version is not given.
func describe(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always", "--dirty").Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
