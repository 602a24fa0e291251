package syncer

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// lateOnce answers the first call of each named command on a key record
// or the bindings as a reply that came after the client's read timeout,
// without running it.
type lateOnce struct {
	mu    sync.Mutex
	names map[string]bool // name → already late once
}

var errLate = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

func (h *lateOnce) late(cmds []redis.Cmder) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cmds {
		if done, ok := h.names[c.Name()]; ok && !done && onKeys(c) {
			h.names[c.Name()] = true
			return true
		}
	}
	return false
}

// onKeys says whether c reads or writes a key record or the bindings.
func onKeys(c redis.Cmder) bool {
	for _, a := range c.Args() {
		if s, ok := a.(string); ok && (strings.HasPrefix(s, "cr:key:") || s == "cr:{pool}:bind") {
			return true
		}
	}
	return false
}

func (h *lateOnce) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *lateOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		if h.late([]redis.Cmder{c}) {
			c.SetErr(errLate)
			return errLate
		}
		return next(ctx, c)
	}
}
func (h *lateOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.late(cmds) {
			for _, c := range cmds {
				c.SetErr(errLate)
			}
			return errLate
		}
		return next(ctx, cmds)
	}
}

// A sync after a flush rides out replies that come late (a loaded
// machine): each step is tried again, and the sync finishes with every key
// and binding back instead of failing and starting over 15 s later.
func TestSyncRidesOutLateReplies(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
		e.apiKeyFile("high", "h2", "sk-ant-api03-H2")
		e.sync()
		for range 6 {
			e.issue("high", true)
		}
		e.flush()
		// The reads of records and bindings, the restore scripts.
		h := &lateOnce{names: map[string]bool{"hgetall": false, "hscan": false, "evalsha": false}}
		e.rdb.AddHook(h)
		rep := e.sync()
		if rep.KeysRestored != 6 || rep.BindingsRestored != 6 {
			t.Fatalf("report %s, want 6 keys and 6 bindings restored", rep)
		}
		for name, late := range h.names {
			if !late {
				t.Errorf("the sync never sent %s: the test did not delay it", name)
			}
		}
	})
}

// recounts counts the recount script's runs (the one script whose first
// key is the set of tiers, followed by the bindings).
type recounts struct{ n atomic.Int64 }

func (h *recounts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *recounts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		err := next(ctx, c)
		// Counted once it ran: an EVALSHA answered NOSCRIPT is sent again
		// as EVAL.
		if a := c.Args(); err == nil && len(a) > 4 && (c.Name() == "evalsha" || c.Name() == "eval") &&
			a[3] == "cr:{pool}:tiers" && a[4] == "cr:{pool}:bind" {
			h.n.Add(1)
		}
		return err
	}
}
func (h *recounts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A sync whose bindings and slot counters already agree skips the
// recount (one script over the whole bind hash, which held Redis past the
// read timeout at 100,000 keys); counters that drifted are still rebuilt
// (TestSyncRecountsSlots).
func TestSyncSkipsTheRecountWhenCountsAgree(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
		e.apiKeyFile("high", "h2", "sk-ant-api03-H2")
		e.sync()
		for range 4 {
			e.issue("high", true)
		}
		h := &recounts{}
		e.rdb.AddHook(h)
		e.sync()
		if n := h.n.Load(); n != 0 {
			t.Fatalf("the recount ran %d times on counters that agree", n)
		}
		e.rdb.HIncrBy(e.ctx, "cr:{pool}:used", "h1", 1) // drift
		e.sync()
		if n := h.n.Load(); n != 1 {
			t.Fatalf("the recount ran %d times on a counter off by one, want 1", n)
		}
	})
}
