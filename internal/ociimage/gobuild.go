package ociimage

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// GoBuild describes how to build one package for an image.
type GoBuild struct {
	// Package is the main package to build, e.g. "./cmd/certsync".
	Package string
	// Dir is the directory go runs in (inside the module). Default: the
	// current directory.
	Dir string
	// Version is stamped into main.version with -X. Required.
	Version string
	// Go is the go command. Default: "go" from PATH.
	Go string
}

// Build compiles the package for platform into out, the way an image
// needs it and reproducibly:
//
//   - CGO_ENABLED=0: a static binary, since the image has no libc and no
//     dynamic loader;
//   - -trimpath: no paths of the build machine in the binary;
//   - -ldflags "-s -w -buildid=": no symbol table or DWARF (a third of
//     the size; stack traces keep function names and lines) and no build
//     ID, which differs between machines.
//
// The rest of the environment (GOFLAGS, GOPROXY, the build cache) is the
// caller's. go's own error output is part of the returned error.
func (g GoBuild) Build(ctx context.Context, platform v1.Platform, out string) error {
	if g.Version == "" {
		return errors.New("no version to stamp into the binary")
	}
	// The go command splits -ldflags on spaces and quotes: a version with
	// either would build a different binary than asked for.
	if strings.ContainsAny(g.Version, " \t\n'\"\\") {
		return fmt.Errorf("version %q: no spaces, quotes or backslashes allowed", g.Version)
	}
	if err := CheckPlatform(platform); err != nil {
		return err
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + platform.Architecture}
	if platform.Architecture == "arm" && platform.Variant != "" {
		env = append(env, "GOARM="+strings.TrimPrefix(platform.Variant, "v"))
	}
	goCmd := g.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath",
		"-ldflags", "-s -w -buildid= -X main.version="+g.Version,
		"-o", out, g.Package)
	cmd.Dir = g.Dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", g.Package, platform, err, strings.TrimSpace(stderr.String()))
	}
	return checkBinary(out, platform)
}

// CheckPlatform says whether images can be built for platform: linux, an
// architecture in elfMachines, and a variant only where Go has one (arm's
// GOARM v5–v7; arm64's v8 is accepted and means plain arm64).
func CheckPlatform(platform v1.Platform) error {
	if platform.OS != "linux" {
		return fmt.Errorf("platform %s: only linux images are built", platform)
	}
	if _, ok := elfMachines[platform.Architecture]; !ok {
		return fmt.Errorf("platform %s: unknown architecture; add its ELF machine to elfMachines", platform)
	}
	switch v := platform.Variant; {
	case v == "":
	case platform.Architecture == "arm" && (v == "v5" || v == "v6" || v == "v7"):
	case platform.Architecture == "arm64" && v == "v8":
	default:
		return fmt.Errorf("platform %s: variant %q is not supported", platform, v)
	}
	return nil
}

// elfMachines are the ELF machines of the architectures images are built
// for. Add a line here to build for another one.
var elfMachines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"386":     elf.EM_386,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// checkBinary refuses a binary that would not start in the image: built
// for another machine, or dynamically linked (the image has no loader and
// no libc, so the kernel would answer "no such file or directory").
func checkBinary(path string, platform v1.Platform) error {
	want, ok := elfMachines[platform.Architecture]
	if !ok {
		return fmt.Errorf("architecture %q: unknown; add its ELF machine to elfMachines", platform.Architecture)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s as an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %v, not %s: build it with GOARCH=%s", path, f.Machine, platform.Architecture, platform.Architecture)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}
