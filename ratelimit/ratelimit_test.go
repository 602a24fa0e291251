package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

const window = 5 * time.Hour

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newMini returns a Limiter on a fresh miniredis with a fake clock at t0.
func newMini(t *testing.T) (*Limiter, *clock.Fake, *miniredis.Miniredis) {
	t.Helper()
	rdb, m := testenv.Mini(t)
	clk := clock.NewFake(t0)
	return New(rdb, WithClock(clk)), clk, m
}

func req(subject, family string, limit int) Request {
	return Request{Subject: subject, Family: family, Limit: limit, Window: window}
}

func mustAdmit(t *testing.T, l *Limiter, r Request) Result {
	t.Helper()
	res, err := l.Admit(context.Background(), r)
	if err != nil {
		t.Fatalf("Admit: %v", err)
	}
	return res
}

func TestAdmitSequence(t *testing.T) {
	type step struct {
		at        time.Duration // offset from t0 at which the request arrives
		allowed   bool
		count     int
		remaining int
		reset     time.Duration // expected Reset, offset from t0
		retry     time.Duration // expected RetryAfter
	}
	cases := []struct {
		name  string
		limit int
		steps []step
	}{
		{
			name:  "limit 1: refused until exactly one window after",
			limit: 1,
			steps: []step{
				{at: 0, allowed: true, count: 1, remaining: 0, reset: window},
				{at: time.Hour, allowed: false, count: 1, remaining: 0, reset: window, retry: 4 * time.Hour},
				{at: window - time.Millisecond, allowed: false, count: 1, remaining: 0, reset: window, retry: time.Millisecond},
				{at: window, allowed: true, count: 1, remaining: 0, reset: 2 * window},
			},
		},
		{
			name:  "limit 3: fills, refuses, frees the oldest first",
			limit: 3,
			steps: []step{
				{at: 0, allowed: true, count: 1, remaining: 2, reset: window},
				{at: time.Hour, allowed: true, count: 2, remaining: 1, reset: window},
				{at: 2 * time.Hour, allowed: true, count: 3, remaining: 0, reset: window},
				{at: 3 * time.Hour, allowed: false, count: 3, remaining: 0, reset: window, retry: 2 * time.Hour},
				// t0's request has left; t0+1h's is now the oldest.
				{at: window, allowed: true, count: 3, remaining: 0, reset: time.Hour + window},
				{at: window + time.Minute, allowed: false, count: 3, remaining: 0, reset: time.Hour + window, retry: time.Hour - time.Minute},
				// Everything but the t0+5h request has left.
				{at: 2*time.Hour + window, allowed: true, count: 2, remaining: 1, reset: 2 * window},
			},
		},
		{
			name:  "refusals do not take places",
			limit: 2,
			steps: []step{
				{at: 0, allowed: true, count: 1, remaining: 1, reset: window},
				{at: 0, allowed: true, count: 2, remaining: 0, reset: window},
				{at: time.Second, allowed: false, count: 2, remaining: 0, reset: window, retry: window - time.Second},
				{at: time.Second, allowed: false, count: 2, remaining: 0, reset: window, retry: window - time.Second},
				{at: window, allowed: true, count: 1, remaining: 1, reset: 2 * window},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, clk, _ := newMini(t)
			r := req("k1", "sonnet", c.limit)
			for i, s := range c.steps {
				clk.Set(t0.Add(s.at))
				got := mustAdmit(t, l, r)
				if got.Allowed != s.allowed || got.Count != s.count || got.Remaining != s.remaining || got.Limit != c.limit {
					t.Fatalf("step %d at +%v: allowed=%v count=%d remaining=%d limit=%d, want %v %d %d %d",
						i, s.at, got.Allowed, got.Count, got.Remaining, got.Limit, s.allowed, s.count, s.remaining, c.limit)
				}
				if !got.Reset.Equal(t0.Add(s.reset)) {
					t.Errorf("step %d: reset %v, want %v", i, got.Reset, t0.Add(s.reset))
				}
				if got.RetryAfter != s.retry {
					t.Errorf("step %d: retry-after %v, want %v", i, got.RetryAfter, s.retry)
				}
				if got.Allowed == (got.ID == "") {
					t.Errorf("step %d: allowed=%v but ID %q", i, got.Allowed, got.ID)
				}
				if got.Subject != r.Subject || got.Family != r.Family {
					t.Errorf("step %d: result names %s/%s", i, got.Subject, got.Family)
				}
			}
		})
	}
}

func TestWindowsAreIndependent(t *testing.T) {
	l, _, _ := newMini(t)
	mustAdmit(t, l, req("k1", "sonnet", 1))
	for _, r := range []Request{req("k1", "opus", 1), req("k2", "sonnet", 1)} {
		if got := mustAdmit(t, l, r); !got.Allowed {
			t.Errorf("%s/%s refused because of k1/sonnet", r.Subject, r.Family)
		}
	}
	if got := mustAdmit(t, l, req("k1", "sonnet", 1)); got.Allowed {
		t.Error("k1/sonnet admitted over its limit")
	}
}

func TestLoweredLimitClampsRemaining(t *testing.T) {
	l, _, _ := newMini(t)
	for range 3 {
		mustAdmit(t, l, req("k1", "sonnet", 3))
	}
	got := mustAdmit(t, l, req("k1", "sonnet", 2))
	if got.Allowed || got.Count != 3 || got.Remaining != 0 {
		t.Errorf("after lowering the limit: allowed=%v count=%d remaining=%d, want false 3 0", got.Allowed, got.Count, got.Remaining)
	}
}

func TestRefundGivesThePlaceBack(t *testing.T) {
	ctx := context.Background()
	l, _, _ := newMini(t)
	r := req("k1", "sonnet", 2)
	first := mustAdmit(t, l, r)
	second := mustAdmit(t, l, r)
	refused := mustAdmit(t, l, r)
	if refused.Allowed {
		t.Fatal("third request admitted on a limit of 2")
	}
	// Refunding a refusal must not free a place.
	if err := l.Refund(ctx, refused); err != nil {
		t.Fatal(err)
	}
	if mustAdmit(t, l, r).Allowed {
		t.Fatal("refunding a refusal freed a place")
	}
	// Refunding twice frees one place, not two, and leaves the other request.
	for range 2 {
		if err := l.Refund(ctx, second); err != nil {
			t.Fatal(err)
		}
	}
	p, err := l.Peek(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 1 {
		t.Fatalf("after refund count=%d, want 1", p.Count)
	}
	again := mustAdmit(t, l, r)
	if !again.Allowed || again.Count != 2 {
		t.Fatalf("after refund: allowed=%v count=%d, want true 2", again.Allowed, again.Count)
	}
	if again.ID == first.ID || again.ID == second.ID {
		t.Error("request ids are reused")
	}
}

func TestPeekDoesNotRecord(t *testing.T) {
	ctx := context.Background()
	l, clk, m := newMini(t)
	r := req("k1", "sonnet", 2)

	p, err := l.Peek(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allowed || p.Count != 0 || p.Remaining != 2 || !p.Reset.Equal(t0) || p.ID != "" {
		t.Errorf("empty window peek: %+v", p)
	}
	if m.Exists(r.Key()) {
		t.Error("Peek created the window key")
	}

	mustAdmit(t, l, r)
	clk.Advance(time.Hour)
	mustAdmit(t, l, r)
	for range 3 {
		p, err = l.Peek(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
	}
	if p.Allowed || p.Count != 2 || p.Remaining != 0 || !p.Reset.Equal(t0.Add(window)) || p.RetryAfter != 4*time.Hour {
		t.Errorf("full window peek: %+v", p)
	}

	// Past the first request's window Peek sees one, without removing it.
	clk.Set(t0.Add(window))
	p, err = l.Peek(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allowed || p.Count != 1 || !p.Reset.Equal(t0.Add(time.Hour+window)) {
		t.Errorf("peek after the first left: %+v", p)
	}
	if members, _ := m.ZMembers(r.Key()); len(members) != 2 {
		t.Errorf("Peek wrote: %d members, want the 2 admitted", len(members))
	}
}

func TestWindowKeyExpires(t *testing.T) {
	l, clk, m := newMini(t)
	r := req("k1", "sonnet", 1)
	mustAdmit(t, l, r)
	if ttl := m.TTL(r.Key()); ttl != window {
		t.Fatalf("TTL after admission %v, want %v", ttl, window)
	}
	// A refusal does not extend the window's life.
	clk.Advance(time.Hour)
	mustAdmit(t, l, r)
	m.FastForward(time.Hour)
	if ttl := m.TTL(r.Key()); ttl != 4*time.Hour {
		t.Fatalf("TTL after refusal %v, want 4h", ttl)
	}
	m.FastForward(4 * time.Hour)
	if m.Exists(r.Key()) {
		t.Error("window key outlived its window")
	}
}

func TestInvalidRequests(t *testing.T) {
	ctx := context.Background()
	l, _, m := newMini(t)
	for _, r := range []Request{
		{Subject: "", Family: "sonnet", Limit: 1, Window: window},
		{Subject: "a:b", Family: "sonnet", Limit: 1, Window: window},
		{Subject: "k", Family: "", Limit: 1, Window: window},
		{Subject: "k", Family: "sonnet", Limit: 0, Window: window},
		{Subject: "k", Family: "sonnet", Limit: 1, Window: time.Microsecond},
	} {
		if _, err := l.Admit(ctx, r); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Admit(%+v) err=%v, want ErrInvalidRequest", r, err)
		}
		if _, err := l.Peek(ctx, r); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Peek(%+v) err=%v, want ErrInvalidRequest", r, err)
		}
		pipe := l.rdb.Pipeline()
		p := l.QueueAdmit(ctx, pipe, r)
		if pipe.Len() != 0 {
			t.Errorf("QueueAdmit(%+v) queued a command", r)
		}
		if _, err := p.Result(ctx); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("QueueAdmit(%+v).Result err=%v, want ErrInvalidRequest", r, err)
		}
	}
	if keys := m.Keys(); len(keys) != 0 {
		t.Errorf("invalid requests wrote %v", keys)
	}
}

func TestQueueAdmitRecoversFromNoScript(t *testing.T) {
	ctx := context.Background()
	l, _, m := newMini(t)
	r := req("k1", "sonnet", 5)
	for round := range 3 {
		// Every round starts without the script cached, as after a restart.
		if err := l.rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		pipe := l.rdb.Pipeline()
		get := pipe.Get(ctx, "other")
		p := l.QueueAdmit(ctx, pipe, r)
		_, _ = pipe.Exec(ctx) // reports NOSCRIPT; Result must recover
		res, err := p.Result(ctx)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !res.Allowed || res.Count != round+1 {
			t.Fatalf("round %d: allowed=%v count=%d, want true %d", round, res.Allowed, res.Count, round+1)
		}
		// Asking again must not run the script again.
		if again, err := p.Result(ctx); err != nil || again != res {
			t.Fatalf("round %d: second Result %+v %v differs", round, again, err)
		}
		if get.Err() == nil {
			t.Error("the other pipelined command lost its own result")
		}
	}
	if members, _ := m.ZMembers(r.Key()); len(members) != 3 {
		t.Errorf("%d members recorded, want 3", len(members))
	}
}

func TestRedisTimePath(t *testing.T) {
	// Without an injected clock the script reads TIME; miniredis answers it
	// from SetTime.
	rdb, m := testenv.Mini(t)
	m.SetTime(t0)
	l := New(rdb)
	r := req("k1", "sonnet", 1)
	res := mustAdmit(t, l, r)
	if !res.Allowed || !res.Reset.Equal(t0.Add(window)) {
		t.Fatalf("admit on server time: %+v", res)
	}
	m.SetTime(t0.Add(window - time.Millisecond))
	if res = mustAdmit(t, l, r); res.Allowed || res.RetryAfter != time.Millisecond {
		t.Fatalf("at window-1ms: %+v", res)
	}
	m.SetTime(t0.Add(window))
	if res = mustAdmit(t, l, r); !res.Allowed {
		t.Fatalf("at window: %+v", res)
	}
}

func TestDeleteSubject(t *testing.T) {
	ctx := context.Background()
	l, _, m := newMini(t)
	for _, r := range []Request{
		req("k1", "sonnet", 5), req("k1", "opus", 5), req("k1", "retired", 5),
		req("k10", "sonnet", 5), // shares a prefix with k1
		req("k2", "sonnet", 5),
	} {
		mustAdmit(t, l, r)
	}
	m.Set("cr:key:k1", "unrelated")
	n, err := l.DeleteSubject(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("deleted %d windows, want 3", n)
	}
	want := map[string]bool{"cr:key:k1": true, "cr:rl:k10:sonnet": true, "cr:rl:k2:sonnet": true}
	keys := m.Keys()
	if len(keys) != len(want) {
		t.Errorf("left %v, want %v", keys, want)
	}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("left %s", k)
		}
	}
	if _, err := l.DeleteSubject(ctx, ""); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty subject: err=%v, want ErrInvalidRequest", err)
	}
}

func TestDeleteSubjectEscapesGlob(t *testing.T) {
	ctx := context.Background()
	l, _, m := newMini(t)
	mustAdmit(t, l, req("k1", "sonnet", 5))
	if n, err := l.DeleteSubject(ctx, "k*"); err != nil || n != 0 {
		t.Errorf("DeleteSubject(k*) = %d, %v; want 0 deleted", n, err)
	}
	if !m.Exists("cr:rl:k1:sonnet") {
		t.Error("a glob in the subject deleted another subject's window")
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {time.Second + time.Millisecond, 2},
		{4*time.Hour + 59*time.Minute + 59*time.Second + 1, 18000},
	} {
		if got := (Result{RetryAfter: c.d}).RetryAfterSeconds(); got != c.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestResultBeforeExecIsAnError(t *testing.T) {
	ctx := context.Background()
	l, _, m := newMini(t)
	r := req("k1", "sonnet", 1)
	p := l.QueueAdmit(ctx, l.rdb.Pipeline(), r)
	if _, err := p.Result(ctx); err == nil {
		t.Fatal("Result before Exec succeeded")
	}
	if m.Exists(r.Key()) {
		t.Error("an unexecuted pipeline recorded the request")
	}
}
