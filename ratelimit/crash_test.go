package ratelimit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

// storeGate stands between one replica and the store: open, every command
// goes through; held, commands wait (a slow store) until it opens again or
// their context ends; dead, none is sent (the replica was killed).
type storeGate struct {
	mu   sync.Mutex
	dead bool
	held chan struct{} // non-nil while held; closed to open
}

var errKilled = errors.New("replica killed")

func (g *storeGate) pass(ctx context.Context) error {
	g.mu.Lock()
	dead, held := g.dead, g.held
	g.mu.Unlock()
	if dead {
		return errKilled
	}
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (g *storeGate) kill() { g.mu.Lock(); g.dead = true; g.mu.Unlock() }
func (g *storeGate) hold() { g.mu.Lock(); g.held = make(chan struct{}); g.mu.Unlock() }
func (g *storeGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != nil {
		close(g.held)
		g.held = nil
	}
}

func (g *storeGate) DialHook(next redis.DialHook) redis.DialHook { return next }
func (g *storeGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := g.pass(ctx); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}
func (g *storeGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := g.pass(ctx); err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}

// twin is a second client to rdb's store, closed with the test.
func twin(t *testing.T, rdb redis.UniversalClient) redis.UniversalClient {
	t.Helper()
	var c redis.UniversalClient
	switch r := rdb.(type) {
	case *redis.Client:
		o := r.Options()
		c = redis.NewClient(&redis.Options{Addr: o.Addr, DB: o.DB, Username: o.Username, Password: o.Password})
	case *redis.ClusterClient:
		o := r.Options()
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: o.Addrs, Username: o.Username, Password: o.Password})
	default:
		t.Fatalf("no twin for %T", rdb)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// freeSpares is how many unused spares l holds for r's window.
func freeSpares(l *Limiter, r Request) int {
	l.sp.mu.Lock()
	defer l.sp.mu.Unlock()
	if s := l.sp.sets[r.Key()]; s != nil {
		return len(s.free)
	}
	return 0
}

// Replica A uses its spares and then cannot rescore them: it was killed,
// or the store answers it only after the spares' leases ended. Replica B
// fills the rest of the quota, waits the leases out and asks again. Never
// more admitted than the limit: a spare whose lease ended may have been
// used, so it is never handed out again (on the old code B took A's used
// spares a second time: 24 admitted against 20).
func TestSparesNeverOvershootWhenTheirHolderCannotRescore(t *testing.T) {
	const limit = 20
	for _, tc := range testenv.Backends(3) {
		for _, fault := range []string{"killed", "slow store"} {
			t.Run(tc.Name+"/"+fault, func(t *testing.T) {
				rdb := tc.Open(t)
				clk := clock.NewFake(t0)
				gate := &storeGate{}
				aRDB := twin(t, rdb)
				aRDB.AddHook(gate)
				a, b := New(aRDB, WithClock(clk)), New(rdb, WithClock(clk))
				if err := a.Preload(context.Background()); err != nil {
					t.Fatal(err)
				}
				running(t, a)
				r := req("spare-crash", "sonnet", limit)
				admitted := 0
				// Requests close together: A's spares grow to 4.
				for i := 0; i < 10 && freeSpares(a, r) < 4; i++ {
					if res := admitMerged(t, a, r); res.Allowed {
						admitted++
					}
					settled(t, a, r, -1)
				}
				n := freeSpares(a, r)
				if n < 2 {
					t.Fatalf("A holds %d spares after %d admissions, want a few", n, admitted)
				}
				if fault == "killed" {
					gate.kill()
				} else {
					gate.hold()
				}
				for range n {
					res := admitMerged(t, a, r)
					if !res.Allowed || !res.spare {
						t.Fatalf("A's request not on a spare: %+v", res)
					}
					admitted++
				}
				admitB := func() {
					for range limit {
						res, err := b.Admit(context.Background(), r)
						if err != nil {
							t.Fatal(err)
						}
						if !res.Allowed {
							return
						}
						admitted++
					}
				}
				admitB()
				if admitted != limit {
					t.Fatalf("%d admitted before the leases end, want %d", admitted, limit)
				}
				clk.Advance(spareLease + time.Second) // every lease has ended
				admitB()
				if fault == "slow store" {
					gate.open() // A's rescoring lands, late
					waitFor(t, "A's rescoring", func() bool {
						a.sp.mu.Lock()
						defer a.sp.mu.Unlock()
						s := a.sp.sets[r.Key()]
						return s != nil && !s.busy && !s.pendingLocked()
					})
					admitB()
				}
				if admitted > limit {
					t.Fatalf("%d admitted against a limit of %d", admitted, limit)
				}
				if m := scores(t, rdb, r); len(m) != limit {
					t.Fatalf("window holds %d entries, want the %d admissions", len(m), limit)
				}
			})
		}
	}
}

// A spare whose lease ended more than a window ago (its holder died long
// ago and nothing needed the place since) has left the window like any
// admission of that time: the next admission that finds the window full
// removes it and takes the place.
func TestLongDeadSpareHasLeftTheWindow(t *testing.T) {
	for _, tc := range testenv.Backends(3) {
		t.Run(tc.Name, func(t *testing.T) {
			rdb := tc.Open(t)
			clk := clock.NewFake(t0)
			l := New(rdb, WithClock(clk))
			r := req("spare-left", "sonnet", 3)
			ended := t0.Add(-window - time.Second).UnixMilli()
			if err := rdb.ZAdd(context.Background(), r.Key(), redis.Z{Score: float64(spareBase + ended), Member: "s-dead"}).Err(); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if res := mustAdmit(t, l, r); !res.Allowed {
					t.Fatalf("admission %d of 3 refused: %+v (a spare that left the window still counts)", i+1, res)
				}
			}
			if m := scores(t, rdb, r); len(m) != 3 {
				t.Fatalf("window holds %v, want the 3 admissions alone", m)
			}
		})
	}
}
