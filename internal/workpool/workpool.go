// Package workpool runs independent calls with a bounded number in flight:
// the pattern restore and reconcile use to send many Secrets to the API
// server at once without opening one request per Secret.
//
// The bound is the whole flow control: each call is one request (or a few)
// to a server that has its own fairness limits (the API server's priority
// and fairness answers 429 with Retry-After, which client-go honours), so
// a small fixed number in flight keeps the server busy without queueing
// thousands of requests in the client.
package workpool

import (
	"context"
	"sync"
)

// Run calls fn(ctx, i) for every i in [0, n), at most limit at once
// (limit < 1 means 1). The calls run in any order; fn must be safe for
// concurrent use and write only to what belongs to its i (e.g. out[i]), so
// the caller can read the results in index order once Run returns.
//
// When ctx ends, Run stops starting calls, waits for those in flight and
// returns ctx.Err(); started reports how many indexes were started, in
// order, so the caller knows which were never tried (started..n-1).
func Run(ctx context.Context, n, limit int, fn func(ctx context.Context, i int)) (started int, err error) {
	limit = max(limit, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, limit)
	for i := range n {
		// A ctx that has already ended wins over a free slot: select
		// picks at random among ready cases.
		if err := ctx.Err(); err != nil {
			return i, err
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return i, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(ctx, i)
		}()
	}
	return n, nil
}
