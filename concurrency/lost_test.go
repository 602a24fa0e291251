package concurrency

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
)

// fault is what faultHook does to the next command or pipeline.
type fault int

const (
	lose fault = iota // it runs, and its answer is lost (a read timeout)
	fail              // it never reaches the store
)

// faultHook applies its queued faults, one per command or pipeline (not
// counting a new connection's set-up), then lets everything through.
type faultHook struct {
	mu     sync.Mutex
	faults []fault
}

var errTimeout = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

func (h *faultHook) next() (fault, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.faults) == 0 {
		return 0, false
	}
	f := h.faults[0]
	h.faults = h.faults[1:]
	return f, true
}

func (h *faultHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *faultHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.ProcessPipelineHook(func(ctx context.Context, cmds []redis.Cmder) error {
			return next(ctx, cmds[0])
		})(ctx, []redis.Cmder{cmd})
	}
}
func (h *faultHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		switch cmds[0].Name() {
		case "hello", "client", "select", "auth":
			return next(ctx, cmds) // a new connection's set-up
		}
		f, ok := h.next()
		if !ok {
			return next(ctx, cmds)
		}
		if f == lose {
			_ = next(ctx, cmds)
		}
		for _, c := range cmds {
			c.SetErr(errTimeout)
		}
		return errTimeout
	}
}

// An enter whose answer was lost may have taken a lease: the request gets
// an error and the key keeps every place. When the give-back cannot reach
// the store either, the next renewal takes the lease back, long before its
// TTL would.
func TestLostEnterAnswerLeaksNoPlace(t *testing.T) {
	cases := []struct {
		name   string
		faults []fault
		// held: leases the key still holds right after the error.
		held int64
	}{
		{"answer lost", []fault{lose}, 0},
		{"answer lost, give-back not sent", []fault{lose, fail}, 1},
	}
	for _, tc := range testenv.Backends(db) {
		for _, c := range cases {
			t.Run(tc.Name+"/"+c.name, func(t *testing.T) {
				rdb := tc.Open(t)
				hook := &faultHook{}
				rdb.AddHook(hook)
				l := New(rdb, Config{QueueWait: 100 * time.Millisecond, Poll: 5 * time.Millisecond})
				ctx := context.Background()
				if err := l.Preload(ctx); err != nil { // the enter runs, not NOSCRIPT
					t.Fatal(err)
				}
				hook.faults = c.faults
				if ls, err := l.Acquire(ctx, "k", 2); err == nil {
					t.Fatalf("got lease %v, want the lost answer's error", ls)
				}
				if n := leases(t, rdb, "k"); n != c.held {
					t.Fatalf("after the lost answer the key holds %d leases, want %d", n, c.held)
				}
				if err := l.Renew(ctx); err != nil {
					t.Fatal(err)
				}
				// Both places are free: two requests in flight at once.
				for i := range 2 {
					if _, err := l.Acquire(ctx, "k", 2); err != nil {
						t.Fatalf("request %d of 2: %v (a lost answer kept a place)", i+1, err)
					}
				}
			})
		}
	}
}
