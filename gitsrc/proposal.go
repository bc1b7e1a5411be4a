package gitsrc

import (
	"context"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
)

// Proposal mode is for a protected branch: certsync reads Branch (say
// main) but pushes its commits to ProposalBranch (say certsync/proposal),
// where a person or a bot reviews and merges them.
//
// The proposal is certsync's own branch and is rebuilt on every push: its
// changes — what it holds beyond the commit where it left Branch — are
// carried onto Branch's current head in one commit, and certsync's new
// commits go on top. So Fetch returns Branch's head with the open proposal
// applied: a pass never orders a certificate that waits in the proposal,
// and after the merge there is nothing left to carry. Closing the proposal
// without merging and deleting the branch discards what it held.
//
// One issuer per proposal branch: the branch is replaced by each push, and
// order claims are not used (they would need a writable Branch).

// withProposal fetches the proposal branch and returns base with what the
// proposal changes carried onto it (base itself when there is nothing).
func (r *Repo) withProposal(ctx context.Context, base *Snapshot) (*Snapshot, error) {
	found, err := r.fetchRef(ctx, r.proposal, r.remote)
	if err != nil {
		return nil, err
	}
	if !found {
		// Nothing proposed yet: the branch will start at base, so local
		// commits on base are what it lacks.
		if base.hash.IsZero() {
			return base, nil
		}
		if err := r.repo.Storer.SetReference(plumbing.NewHashReference(r.remote, base.hash)); err != nil {
			return nil, err
		}
		return base, r.settle()
	}
	changes, err := r.proposed(ctx, base)
	if err != nil || len(changes) == 0 {
		return base, err
	}
	h, err := r.writeCommit(ctx, base, changes, fmt.Sprintf("certsync: carry the open proposal onto %s\n\n%d %s proposed on %s and not merged yet.\n",
		r.opts.Branch, len(changes), plural(len(changes), "file"), r.opts.ProposalBranch))
	if err != nil {
		return nil, fmt.Errorf("carry the proposal: %w", err)
	}
	r.log.Info("carrying the open proposal", "branch", r.opts.ProposalBranch, "files", len(changes))
	return r.snapshot(h)
}

// proposed lists what the proposal branch changes since it left base's
// history and base does not already have (a merged proposal has nothing).
func (r *Repo) proposed(ctx context.Context, base *Snapshot) ([]Change, error) {
	tip, err := r.refHash(r.remote)
	if err != nil || tip.IsZero() || tip == base.hash {
		return nil, err
	}
	from := plumbing.ZeroHash
	if !base.hash.IsZero() {
		if from, err = r.proposalBase(ctx, tip, base.hash); err != nil {
			return nil, fmt.Errorf("find where %s left %s: %w", r.opts.ProposalBranch, r.opts.Branch, err)
		}
		if from == tip {
			return nil, nil // merged
		}
	}
	all, err := r.changesBetween(ctx, from, tip)
	if err != nil {
		return nil, fmt.Errorf("read the proposal: %w", err)
	}
	var out []Change
	for _, ch := range all {
		have, err := base.ReadFile(ch.Path)
		exists := err == nil
		switch {
		case ch.Delete && !exists:
		case !ch.Delete && exists && string(have) == string(ch.Content):
		default:
			out = append(out, ch)
		}
	}
	return out, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
