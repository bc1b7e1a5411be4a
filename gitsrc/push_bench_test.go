package gitsrc

import (
	"context"
	"fmt"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/certsync/certsync/internal/testbed"
)

// BenchmarkPushLocalHistory: one commit pushed by an agent whose clone
// holds 4,000 commits it wrote (months of passes without a restart),
// side by side with the same push from a fresh clone (the head only) and
// with go-git's own push from the deep clone, which lists every object
// the local history reaches (what certsync did before push.go). Over git
// http-backend; each figure in ms per push.
func BenchmarkPushLocalHistory(b *testing.B) {
	ctx := context.Background()
	g := testbed.StartGitHTTP(b, "", "")
	g.CreateRepo("certs")
	url := g.URL("certs")
	open := func() (*Repo, *Snapshot) {
		r, err := Open(ctx, Options{URL: url, Branch: "main", Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		s, err := r.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return r, s
	}
	// 100 Secrets in 10 namespaces, then 4,000 renewals of one of them
	// at a time, committed by the deep clone and pushed.
	deep, s := open()
	var seed []Change
	for i := range 100 {
		seed = append(seed, Change{Path: fmt.Sprintf("secrets/default/ns%d/c%d.yaml", i%10, i), Content: []byte(fmt.Sprint("v0 ", i))})
	}
	s, err := deep.Commit(ctx, s, seed, "seed")
	if err != nil {
		b.Fatal(err)
	}
	for n := 1; n <= 4000; n++ {
		if s, err = deep.Commit(ctx, s, []Change{{Path: fmt.Sprintf("secrets/default/ns%d/c%d.yaml", n%10, n%100), Content: []byte(fmt.Sprint("v", n))}}, "renewal"); err != nil {
			b.Fatal(err)
		}
	}
	if err := deep.Push(ctx); err != nil {
		b.Fatal(err)
	}
	renew := func(r *Repo, n int) {
		s, err := r.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Commit(ctx, s, []Change{{Path: fmt.Sprintf("secrets/default/ns%d/c%d.yaml", n%10, n%100), Content: []byte(fmt.Sprint("bench ", n))}}, "renewal"); err != nil {
			b.Fatal(err)
		}
	}
	timed := func(push func() error) float64 {
		start := time.Now()
		if err := push(); err != nil {
			b.Fatal(err)
		}
		return float64(time.Since(start).Microseconds()) / 1000
	}
	var deepMS, freshMS, goGitMS float64
	n := 0
	for b.Loop() {
		n++
		renew(deep, n)
		deepMS += timed(func() error { return deep.Push(ctx) })

		fresh, _ := open()
		renew(fresh, n)
		freshMS += timed(func() error { return fresh.Push(ctx) })

		renew(deep, n)
		remote, _ := deep.refHash(deep.remote)
		goGitMS += timed(func() error {
			err := deep.repo.PushContext(ctx, &git.PushOptions{RemoteName: remoteName, RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main"},
				ForceWithLease: &git.ForceWithLease{RefName: "refs/heads/main", Hash: remote}})
			if err == nil {
				head, _ := deep.refHash(deep.branch)
				err = deep.repo.Storer.SetReference(plumbing.NewHashReference(deep.remote, head))
			}
			return err
		})
	}
	f := float64(n)
	b.ReportMetric(deepMS/f, "deep-clone-ms")
	b.ReportMetric(freshMS/f, "fresh-clone-ms")
	b.ReportMetric(goGitMS/f, "deep-clone-gogit-ms")
}
