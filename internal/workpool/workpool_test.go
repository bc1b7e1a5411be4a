package workpool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRunBoundsCallsInFlight(t *testing.T) {
	tests := []struct {
		name            string
		n, limit        int
		wantMaxInFlight int
	}{
		{name: "more work than slots", n: 200, limit: 7, wantMaxInFlight: 7},
		{name: "fewer calls than slots", n: 3, limit: 16, wantMaxInFlight: 3},
		{name: "limit below one runs one at a time", n: 20, limit: 0, wantMaxInFlight: 1},
		{name: "nothing to do", n: 0, limit: 4, wantMaxInFlight: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inFlight, maxInFlight atomic.Int32
			// Every call waits until the pool is full (or all calls
			// started), so the test sees the bound reached, not just
			// respected by calls that happened to finish early.
			full := make(chan struct{})
			var once sync.Once
			out := make([]int, tt.n)
			started, err := Run(context.Background(), tt.n, tt.limit, func(_ context.Context, i int) {
				now := inFlight.Add(1)
				for {
					m := maxInFlight.Load()
					if now <= m || maxInFlight.CompareAndSwap(m, now) {
						break
					}
				}
				if int(now) == tt.wantMaxInFlight {
					once.Do(func() { close(full) })
				}
				<-full
				out[i] = i * i
				inFlight.Add(-1)
			})
			if err != nil || started != tt.n {
				t.Fatalf("Run = %d, %v; want %d, nil", started, err, tt.n)
			}
			if got := int(maxInFlight.Load()); got != tt.wantMaxInFlight {
				t.Errorf("at most %d calls in flight, want %d", got, tt.wantMaxInFlight)
			}
			for i, v := range out {
				if v != i*i {
					t.Fatalf("out[%d] = %d: call %d did not run", i, v, i)
				}
			}
		})
	}
}

func TestRunStopsStartingWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	// One at a time, so which calls start is exact: the fifth cancels
	// and finishes, and no sixth starts.
	started, err := Run(ctx, 100, 1, func(ctx context.Context, i int) {
		if calls.Add(1) == 5 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := int(calls.Load()); got != 5 || started != 5 {
		t.Errorf("started %d, calls made %d; want 5 of each", started, got)
	}
}
