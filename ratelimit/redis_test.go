package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
)

// These tests run on the real Redis of REDIS_URL (database 3) and on its
// TIME: no injected clock.

func TestRealConcurrentReplicasNeverOvershoot(t *testing.T) {
	const (
		callers = 60
		limit   = 42
		rounds  = 4
	)
	ctx := context.Background()
	// Two clients with their own connection pools stand for two replicas.
	replicas := []*Limiter{New(testenv.Redis(t, 3)), New(testenv.Redis(t, 3))}
	check := testenv.Redis(t, 3)

	for round := range rounds {
		r := req(fmt.Sprintf("round%d", round), "sonnet", limit)
		results := make([]Result, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = replicas[i%2].Admit(ctx, r)
			})
		}
		close(start)
		wg.Wait()

		allowed, refused := 0, 0
		ids := map[string]bool{}
		for i, res := range results {
			if errs[i] != nil {
				t.Fatalf("round %d caller %d: %v", round, i, errs[i])
			}
			if res.Allowed {
				allowed++
				ids[res.ID] = true
				continue
			}
			refused++
			if res.RetryAfter <= 0 || res.RetryAfter > window {
				t.Errorf("round %d: refused with retry-after %v", round, res.RetryAfter)
			}
			if res.Count != limit || res.Remaining != 0 {
				t.Errorf("round %d: refused with count=%d remaining=%d", round, res.Count, res.Remaining)
			}
		}
		if allowed != limit || refused != callers-limit {
			t.Fatalf("round %d: %d allowed, %d refused; want %d and %d", round, allowed, refused, limit, callers-limit)
		}
		if len(ids) != limit {
			t.Errorf("round %d: %d distinct ids for %d admissions", round, len(ids), limit)
		}
		if n := check.ZCard(ctx, r.Key()).Val(); n != limit {
			t.Errorf("round %d: window holds %d, want %d", round, n, limit)
		}
	}
}

func TestRealServerTime(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t, 3)
	l := New(rdb)
	r := req("k1", "opus", 1)
	serverNow, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	res := mustAdmit(t, l, r)
	// Reset is the server's admission time plus the window; allow for the
	// round trip between reading TIME and admitting (scores are whole ms).
	if d := res.Reset.Sub(serverNow.Truncate(time.Millisecond).Add(window)); d < 0 || d > 5*time.Second {
		t.Errorf("reset %v is %v after server time + window", res.Reset, d)
	}
	refused := mustAdmit(t, l, r)
	if refused.Allowed || refused.RetryAfter <= 0 || refused.RetryAfter > window || !refused.Reset.Equal(res.Reset) {
		t.Errorf("second request: %+v", refused)
	}
	if ttl := rdb.PTTL(ctx, r.Key()).Val(); ttl <= window-5*time.Second || ttl > window {
		t.Errorf("window TTL %v, want about %v", ttl, window)
	}
	if err := l.Refund(ctx, res); err != nil {
		t.Fatal(err)
	}
	if again := mustAdmit(t, l, r); !again.Allowed {
		t.Errorf("refunded place not given back: %+v", again)
	}
}

func TestRealQueueAdmitInPipeline(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t, 3)
	l := New(rdb)
	if err := l.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "cr:acct:a1", "alias", "one").Err(); err != nil {
		t.Fatal(err)
	}
	r := req("k1", "sonnet", 2)
	var counts []int
	for range 3 {
		pipe := rdb.Pipeline()
		p := l.QueueAdmit(ctx, pipe, r)
		acct := pipe.HGetAll(ctx, "cr:acct:a1")
		peek := l.QueuePeek(ctx, pipe, r)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("exec with the script loaded: %v", err)
		}
		res, err := p.Result(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if acct.Val()["alias"] != "one" {
			t.Errorf("pipelined HGETALL: %v", acct.Val())
		}
		pk, err := peek.Result(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The peek ran after the admission in the same pipeline.
		if pk.Count != res.Count {
			t.Errorf("peek count %d after admission count %d", pk.Count, res.Count)
		}
		counts = append(counts, res.Count)
		if res.Allowed != (len(counts) <= 2) {
			t.Errorf("admission %d: allowed=%v", len(counts), res.Allowed)
		}
	}
	if fmt.Sprint(counts) != "[1 2 2]" {
		t.Errorf("counts %v, want [1 2 2]", counts)
	}
}

func TestRealNoScriptRecovery(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t, 3)
	l := New(rdb)
	r := req("k1", "sonnet", 10)

	flush := func() {
		t.Helper()
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Pipelined: EVALSHA fails inside Exec, Result re-runs with EVAL.
	flush()
	pipe := rdb.Pipeline()
	set := pipe.Set(ctx, "other", "v", 0)
	p := l.QueueAdmit(ctx, pipe, r)
	if _, err := pipe.Exec(ctx); !redis.HasErrorPrefix(err, "NOSCRIPT") {
		t.Fatalf("exec after SCRIPT FLUSH: %v, want NOSCRIPT", err)
	}
	if set.Err() != nil {
		t.Errorf("other command failed: %v", set.Err())
	}
	res, err := p.Result(ctx)
	if err != nil || !res.Allowed || res.Count != 1 {
		t.Fatalf("after NOSCRIPT: %+v %v", res, err)
	}
	// The EVAL reloaded the script: the next pipeline needs no fallback.
	pipe = rdb.Pipeline()
	p = l.QueueAdmit(ctx, pipe, r)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("exec after recovery: %v", err)
	}
	if res, err = p.Result(ctx); err != nil || res.Count != 2 {
		t.Fatalf("second pipelined admission: %+v %v", res, err)
	}

	// Direct Admit and Peek recover too.
	flush()
	if res, err = l.Admit(ctx, r); err != nil || res.Count != 3 {
		t.Fatalf("Admit after flush: %+v %v", res, err)
	}
	flush()
	if res, err = l.Peek(ctx, r); err != nil || res.Count != 3 {
		t.Fatalf("Peek after flush: %+v %v", res, err)
	}
	if n := rdb.ZCard(ctx, r.Key()).Val(); n != 3 {
		t.Errorf("window holds %d, want 3: a fallback recorded twice", n)
	}
}

func TestRealDeleteSubject(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.Redis(t, 3)
	l := New(rdb)
	for _, r := range []Request{req("k1", "sonnet", 5), req("k1", "opus", 5), req("k2", "opus", 5)} {
		mustAdmit(t, l, r)
	}
	n, err := l.DeleteSubject(ctx, "k1")
	if err != nil || n != 2 {
		t.Fatalf("DeleteSubject = %d, %v; want 2", n, err)
	}
	if rdb.Exists(ctx, "cr:rl:k1:sonnet", "cr:rl:k1:opus").Val() != 0 || rdb.Exists(ctx, "cr:rl:k2:opus").Val() != 1 {
		t.Error("wrong windows deleted")
	}
}
