package ratelimit

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
)

// A run's answer shared out: the first take requests are admitted in
// order, the rest refused with the full window's figures.
func TestMergedResult(t *testing.T) {
	r := req("s", "sonnet", 5)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	oldest := now.Add(-time.Hour)
	v := func(take, before int) []int64 {
		return []int64{int64(take), int64(before), oldest.UnixMilli(), now.UnixMilli(), 0}
	}
	cases := []struct {
		name          string
		v             []int64
		i             int
		allowed       bool
		count, remain int
		retry         time.Duration
	}{
		{"first of three into an empty window", []int64{3, 0, now.UnixMilli(), now.UnixMilli(), 0}, 0, true, 1, 4, 0},
		{"third of three", v(3, 1), 2, true, 4, 1, 0},
		{"last place", v(2, 3), 1, true, 5, 0, 0},
		{"past the last place", v(2, 3), 2, false, 5, 0, window - time.Hour},
		{"window already full", v(0, 5), 0, false, 5, 0, window - time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := mergedResult(r, "id", c.i, c.v)
			if res.Allowed != c.allowed || res.Count != c.count || res.Remaining != c.remain || res.RetryAfter != c.retry {
				t.Fatalf("got allowed=%v count=%d remaining=%d retry=%v", res.Allowed, res.Count, res.Remaining, res.RetryAfter)
			}
			if (res.ID != "") != c.allowed {
				t.Fatalf("id %q on allowed=%v", res.ID, res.Allowed)
			}
		})
	}
}

// evalCounter counts script runs (EVALSHA and EVAL) a client sends.
type evalCounter struct{ n atomic.Int64 }

func (e *evalCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (e *evalCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			e.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (e *evalCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Two replicas admitting many concurrent requests of one window, merged:
// exactly the limit is admitted, with the counts 1..limit each once, the
// window holds exactly the admitted ids, and the runs were shared.
func TestMergedNeverOvershoots(t *testing.T) {
	for _, tc := range testenv.Backends(3) {
		t.Run(tc.Name, func(t *testing.T) {
			const callers, limit = 120, 42
			rdb := tc.Open(t)
			counter := &evalCounter{}
			rdb.AddHook(counter)
			replicas := []*Limiter{New(rdb), New(rdb)}
			r := req("merged", "sonnet", limit)
			results := make([]Result, callers)
			errs := make([]error, callers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					<-start
					res, err := replicas[i%2].AdmitMerged(context.Background(), r)
					results[i], errs[i] = *res, err
				})
			}
			close(start)
			wg.Wait()
			var counts []int
			ids := map[string]bool{}
			for i, res := range results {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				if res.Allowed {
					counts = append(counts, res.Count)
					ids[res.ID] = true
					continue
				}
				if res.Count != limit || res.Remaining != 0 || res.RetryAfter <= 0 || res.RetryAfter > window {
					t.Fatalf("refused with count=%d remaining=%d retry=%v", res.Count, res.Remaining, res.RetryAfter)
				}
			}
			sort.Ints(counts)
			for i, c := range counts {
				if c != i+1 {
					t.Fatalf("admitted counts %v, want 1..%d each once", counts, limit)
				}
			}
			if len(counts) != limit {
				t.Fatalf("%d admitted, limit %d", len(counts), limit)
			}
			members, err := rdb.ZRange(context.Background(), r.Key(), 0, -1).Result()
			if err != nil || len(members) != limit {
				t.Fatalf("window holds %d (%v), want %d", len(members), err, limit)
			}
			for _, m := range members {
				if !ids[m] {
					t.Fatalf("window holds %s, which no caller was told was admitted", m)
				}
			}
			runs := counter.n.Load()
			t.Logf("%d admissions in %d script runs", callers, runs)
			if runs >= callers {
				t.Fatalf("%d admissions took %d runs: none was shared", callers, runs)
			}
		})
	}
}

// Callers that give up while waiting are never admitted; every caller
// told "admitted" is in the window, and nobody else.
func TestMergedCancelledNeverAdmitted(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	l := New(rdb)
	r := req("cancel", "sonnet", 1000)
	var admitted, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(300))*time.Microsecond)
			defer cancel()
			res, err := l.AdmitMerged(ctx, r)
			switch {
			case err != nil:
				gaveUp.Add(1)
			case res.Allowed:
				admitted.Add(1)
			default:
				t.Errorf("caller %d refused below the limit", i)
			}
		})
	}
	wg.Wait()
	n, err := rdb.ZCard(context.Background(), r.Key()).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d admitted, %d gave up", admitted.Load(), gaveUp.Load())
	if n != admitted.Load() {
		t.Fatalf("window holds %d, %d callers were admitted", n, admitted.Load())
	}
	if l.groups != nil && len(l.groups) != 0 {
		t.Fatalf("%d groups left behind", len(l.groups))
	}
}
