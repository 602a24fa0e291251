package store_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/store"
)

// pipeCounter counts the pipelines a client sends.
type pipeCounter struct{ n atomic.Int64 }

func (p *pipeCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		p.n.Add(1)
		return next(ctx, cmds)
	}
}

func TestCoalescer(t *testing.T) {
	for _, tc := range testenv.Backends(14) {
		t.Run(tc.Name, func(t *testing.T) {
			rdb := tc.Open(t)
			counter := &pipeCounter{}
			rdb.AddHook(counter)
			c := store.NewCoalescer(rdb, 2, 5*time.Second)
			defer c.Close()
			const callers, each = 50, 40
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					key := "co:" + strconv.Itoa(i)
					for n := 1; n <= each; n++ {
						var cmd *redis.IntCmd
						if err := c.Do(context.Background(), func(p redis.Pipeliner) { cmd = p.Incr(context.Background(), key) }); err != nil {
							t.Errorf("do: %v", err)
							return
						}
						// Each caller sees its own command's answer, in order.
						if got, err := cmd.Result(); err != nil || got != int64(n) {
							t.Errorf("%s: got %d, %v; want %d", key, got, err, n)
							return
						}
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			pipes := counter.n.Load()
			t.Logf("%d calls in %d pipelines", callers*each, pipes)
			if pipes >= callers*each {
				t.Fatalf("%d calls took %d pipelines: nothing was coalesced", callers*each, pipes)
			}
		})
	}
}

// A caller whose context ends before its commands are sent gets the
// context's error and its commands never run; one that gets nil had them
// run exactly once. Summed over many racing cancellations, the counter
// equals the number of successful calls.
func TestCoalescerCancelledNeverRuns(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	c := store.NewCoalescer(rdb, 1, 5*time.Second)
	defer c.Close()
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*50*time.Microsecond)
			defer cancel()
			if err := c.Do(ctx, func(p redis.Pipeliner) { p.Incr(context.Background(), "co:n") }); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	got, err := rdb.Get(context.Background(), "co:n").Int64()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	t.Logf("%d of 400 calls ran", ok.Load())
	if got != ok.Load() {
		t.Fatalf("counter %d, successful calls %d: a cancelled call ran, or a successful one did not", got, ok.Load())
	}
}

// A Do racing Close either runs or answers redis.ErrClosed; it never waits
// for its context because its job was queued after the flushers drained.
// Each round closes a coalescer while callers keep calling; a caller still
// waiting a second after Close returned is stuck.
func TestCoalescerDoRacingCloseNeverHangs(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	for round := range 300 {
		c := store.NewCoalescer(rdb, 2, 5*time.Second)
		var wg sync.WaitGroup
		closed := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					start := time.Now()
					err := c.Do(ctx, func(p redis.Pipeliner) { p.Incr(context.Background(), "co:close") })
					cancel()
					switch {
					case errors.Is(err, redis.ErrClosed):
						return
					case err != nil:
						t.Errorf("round %d: Do after %v: %v, want nil or redis.ErrClosed", round, time.Since(start), err)
						return
					}
					select {
					case <-closed:
						return // Close returned and this call ran: fine
					default:
					}
				}
			})
		}
		c.Close()
		close(closed)
		stuck := make(chan struct{})
		go func() { wg.Wait(); close(stuck) }()
		select {
		case <-stuck:
		case <-time.After(time.Second):
			t.Fatalf("round %d: a Do racing Close still waits a second after Close returned", round)
		}
		if t.Failed() {
			return
		}
	}
}
