package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/certsync/certsync/reconcile"
)

// errReadOnly is what a working tree answers to any write: validate and
// plan only read.
var errReadOnly = errors.New("a working tree is read-only for certsync validate and plan")

// worktree is a checked-out repository on disk, read as a reconcile.Tree
// and served as a read-only reconcile.Repository, so a pull request is
// validated and planned offline: no Git server, CA, cluster or key.
type worktree struct {
	root  string
	paths []string
}

var (
	_ reconcile.Tree       = (*worktree)(nil)
	_ reconcile.Repository = worktreeRepo{}
)

// openWorktree lists the regular files under root (not .git). Symbolic
// links are skipped: the repository is data, and a link could point at
// any file of the machine running the check.
func openWorktree(root string) (*worktree, error) {
	info, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("read the repository: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a folder: give the root of a checked-out repository", root)
	}
	w := &worktree{root: root}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		w.paths = append(w.paths, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the repository %s: %w", root, err)
	}
	sort.Strings(w.paths)
	return w, nil
}

func (w *worktree) Commit() string  { return "" }
func (w *worktree) Paths() []string { return w.paths }
func (w *worktree) ReadFile(p string) ([]byte, error) {
	i := sort.SearchStrings(w.paths, p)
	if i == len(w.paths) || w.paths[i] != p || strings.HasPrefix(p, "/") {
		return nil, fs.ErrNotExist // only files the walk listed are ever read
	}
	return os.ReadFile(filepath.Join(w.root, filepath.FromSlash(p)))
}

// worktreeRepo serves a worktree as a Repository that never writes.
type worktreeRepo struct{ tree *worktree }

func (r worktreeRepo) Fetch(context.Context) (reconcile.Tree, error) { return r.tree, nil }
func (r worktreeRepo) Pending(context.Context) (int, error)          { return 0, nil }
func (r worktreeRepo) PendingChanges(context.Context) ([]reconcile.FileChange, error) {
	return nil, nil
}
func (r worktreeRepo) Local(context.Context) (reconcile.Tree, error) { return r.tree, nil }
func (r worktreeRepo) Reset(context.Context, reconcile.Tree) error   { return errReadOnly }
func (r worktreeRepo) Push(context.Context) error                    { return errReadOnly }
func (r worktreeRepo) Commit(context.Context, reconcile.Tree, []reconcile.FileChange, string) (reconcile.Tree, error) {
	return nil, errReadOnly
}
