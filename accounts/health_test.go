package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

func ptr(f float64) *float64 { return &f }

func newHealthPool(t *testing.T, rdb redis.UniversalClient) (*Pool, *clock.Fake) {
	clk := clock.NewFake(t0)
	log, _ := newNullLog()
	p := NewPool(rdb, clk, log)
	p.SetHealth(Health{MaxFails: 3, FailWindow: time.Minute, Cooldown: time.Minute})
	return p, clk
}

func writeUtil(t *testing.T, rdb redis.UniversalClient, acct string, d5, d7 float64) {
	t.Helper()
	w := NewUtilWriter(rdb, time.Second, nil)
	w.Observe(acct, Utilization{FiveHour: ptr(d5), SevenDay: ptr(d7)})
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The choice order, for a new binding: usable before limited/cooling, then
// fewest used slots, then lowest 7-day, then lowest 5-hour, then name.
func TestBindOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, p *Pool, rdb redis.UniversalClient)
		want  string
	}{
		{"name breaks a full tie", func(*testing.T, *Pool, redis.UniversalClient) {}, "a"},
		{"fewest slots first", func(t *testing.T, p *Pool, _ redis.UniversalClient) {
			if _, err := p.BindTo(context.Background(), "pre", "high", 3, "a"); err != nil {
				t.Fatal(err)
			}
		}, "b"},
		{"7-day utilization before 5-hour", func(t *testing.T, _ *Pool, rdb redis.UniversalClient) {
			writeUtil(t, rdb, "a", 0.1, 0.9)
			writeUtil(t, rdb, "b", 0.9, 0.2)
			writeUtil(t, rdb, "c", 0.0, 0.5)
		}, "b"},
		{"5-hour breaks a 7-day tie", func(t *testing.T, _ *Pool, rdb redis.UniversalClient) {
			writeUtil(t, rdb, "a", 0.5, 0.3)
			writeUtil(t, rdb, "b", 0.4, 0.3)
			writeUtil(t, rdb, "c", 0.6, 0.3)
		}, "b"},
		{"limited and cooling go last", func(t *testing.T, p *Pool, _ redis.UniversalClient) {
			ctx := context.Background()
			if err := p.Limit(ctx, "a", t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if _, err := p.Fail(ctx, "b", fmt.Sprint("key", i)); err != nil {
					t.Fatal(err)
				}
			}
		}, "c"},
		{"slots before utilization", func(t *testing.T, p *Pool, rdb redis.UniversalClient) {
			writeUtil(t, rdb, "a", 0, 0)
			writeUtil(t, rdb, "b", 0.9, 0.9)
			writeUtil(t, rdb, "c", 0.9, 0.9)
			if _, err := p.BindTo(context.Background(), "pre", "high", 3, "a"); err != nil {
				t.Fatal(err)
			}
		}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := testenv.Redis(t, 2)
			p, _ := newHealthPool(t, rdb)
			addAccounts(t, p, "high", "c", "b", "a")
			tc.setup(t, p, rdb)
			b, err := p.Bind(context.Background(), "k", "high", 3)
			if err != nil || b.Account != tc.want {
				t.Fatalf("bind = %+v %v, want %s", b, err, tc.want)
			}
		})
	}
}

func TestFailuresCoolAfterMaxInWindow(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	p, clk := newHealthPool(t, rdb)
	ctx := context.Background()
	addAccounts(t, p, "high", "a")
	state := func() State {
		pipe := rdb.Pipeline()
		c := p.QueueState(ctx, pipe, "high", "a")
		_, _ = pipe.Exec(ctx)
		s, err := c.Result()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Two failures, then a gap longer than the window: the run starts over.
	for i := 0; i < 2; i++ {
		if until, _ := p.Fail(ctx, "a", fmt.Sprint("key", i)); !until.IsZero() {
			t.Fatal("cooled too early")
		}
	}
	if s := state(); s.Fails != 2 {
		t.Fatalf("fails = %d", s.Fails)
	}
	clk.Advance(61 * time.Second)
	if until, _ := p.Fail(ctx, "a", "key2"); !until.IsZero() {
		t.Fatal("a stale run must not count")
	}
	// A success ends the run.
	if err := p.Succeeded(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if s := state(); s.Fails != 0 {
		t.Fatalf("after success fails = %d", s.Fails)
	}
	var until time.Time
	for i := 0; i < 3; i++ {
		until, _ = p.Fail(ctx, "a", fmt.Sprint("key", i))
	}
	if !until.Equal(clk.Now().Add(time.Minute).Truncate(time.Second)) {
		t.Fatalf("cooling until %v", until)
	}
	s := state()
	if !s.Unusable(clk.Now()) || s.Blacklisted {
		t.Fatalf("cooling account: %+v", s)
	}
	clk.Advance(time.Minute)
	if state().Unusable(clk.Now()) {
		t.Fatal("cooldown must end")
	}
}

func TestOverflowChoiceAndMarks(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	p, clk := newHealthPool(t, rdb)
	ctx := context.Background()
	addAccounts(t, p, "high", "a", "b", "c", "d")
	addAccounts(t, p, "trial", "t")
	if err := p.Blacklist(ctx, "b", "upstream 401"); err != nil {
		t.Fatal(err)
	}
	writeUtil(t, rdb, "c", 0.2, 0.6)
	writeUtil(t, rdb, "d", 0.9, 0.5)
	// Slots do not matter: d is full but has the lowest 7-day utilization.
	for i := 0; i < 3; i++ {
		if _, err := p.BindTo(ctx, fmt.Sprint("k", i), "high", 3, "d"); err != nil {
			t.Fatal(err)
		}
	}
	reset := clk.Now().Add(2 * time.Hour)
	to, err := p.Overflow(ctx, "high", "a", OverflowMark{LimitedUntil: reset})
	if err != nil || to != "d" {
		t.Fatalf("overflow = %q %v", to, err)
	}
	view, _ := p.View(ctx, []string{"high"}, func(string) int { return 3 })
	if lt := view["high"][0].LimitedTill; lt == nil || !lt.Equal(reset.Truncate(time.Second)) {
		t.Fatalf("a must be limited until the reset: %+v", view["high"][0])
	}
	// Failures on d cool it: the choice then is c; a is limited; nothing else.
	for i := 0; i < 3; i++ {
		to, err = p.Overflow(ctx, "high", "d", OverflowMark{Failure: true, By: fmt.Sprint("key", i)})
	}
	if err != nil || to != "c" {
		t.Fatalf("overflow from d = %q %v", to, err)
	}
	if _, err := p.Overflow(ctx, "high", "c", OverflowMark{}); !errors.Is(err, ErrNoOverflow) {
		t.Fatalf("nothing left must be ErrNoOverflow, got %v", err)
	}
	// A key whose binding is untouched: k0 stays on d.
	if a, _ := p.Bound(ctx, "k0"); a != "d" {
		t.Fatalf("binding moved: %s", a)
	}
	clk.Set(reset.Add(time.Second))
	if to, err := p.Overflow(ctx, "high", "c", OverflowMark{}); err != nil || to != "a" {
		t.Fatalf("after the reset a is usable again: %q %v", to, err)
	}
}

// Issue 24: one key whose requests make the upstream fail (five 500s)
// put every account of its tier into cooldown, for free (its requests were
// refunded). Failures cool an account only when at least two keys had them
// within the window: recorded one by one (Fail) or with an overflow.
func TestOneKeysFailuresNeverCoolAnAccount(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	p, clk := newHealthPool(t, rdb)
	ctx := context.Background()
	addAccounts(t, p, "high", "a", "b")
	cooling := func(name string) bool {
		view, err := p.View(ctx, []string{"high"}, func(string) int { return 3 })
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range view["high"] {
			if v.Name == name {
				return v.CoolingTill != nil && v.CoolingTill.After(clk.Now())
			}
		}
		t.Fatalf("no account %s", name)
		return false
	}
	for i := 0; i < 10; i++ {
		if until, err := p.Fail(ctx, "a", "attacker-hash"); err != nil || !until.IsZero() {
			t.Fatalf("failure %d of one key cooled a: %v %v", i, until, err)
		}
		if _, err := p.Overflow(ctx, "high", "b", OverflowMark{Failure: true, By: "attacker-hash"}); err != nil {
			t.Fatalf("overflow %d from b: %v", i, err)
		}
	}
	if cooling("a") || cooling("b") {
		t.Fatal("one key's failures cooled an account for everyone")
	}
	// A second key failing within the window: the run now counts.
	until, err := p.Fail(ctx, "a", "another-hash")
	if err != nil || until.IsZero() || !cooling("a") {
		t.Fatalf("failures of two keys must cool a: %v %v", until, err)
	}
	if _, err := p.Overflow(ctx, "high", "b", OverflowMark{Failure: true, By: "another-hash"}); !errors.Is(err, ErrNoOverflow) || !cooling("b") {
		t.Fatalf("failures of two keys must cool b (and leave no account to overflow to): %v", err)
	}
	// After the window, one key alone starts over and cannot cool.
	clk.Advance(2 * time.Minute)
	for i := 0; i < 5; i++ {
		if until, _ := p.Fail(ctx, "a", "attacker-hash"); !until.IsZero() {
			t.Fatal("a new run of one key cooled a")
		}
	}
}

// Concurrent failures from two replicas: exactly one starts the cooldown.
func TestFailScriptAtomic(t *testing.T) {
	c1, c2 := testenv.Redis(t, 2), testenv.Redis(t, 2)
	p1, _ := newHealthPool(t, c1)
	p2, _ := newHealthPool(t, c2)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	cooled := 0
	for i := 0; i < 30; i++ {
		p := p1
		if i%2 == 1 {
			p = p2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if until, err := p.Fail(ctx, "a", fmt.Sprint("key", i)); err == nil && !until.IsZero() {
				mu.Lock()
				cooled++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if cooled != 10 {
		t.Fatalf("30 failures with max 3 must start 10 cooldowns, got %d", cooled)
	}
}

func TestParseUtilizationAndRejected(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := http.Header{}
	h.Set("anthropic-ratelimit-unified-status", "allowed")
	h.Set("anthropic-ratelimit-unified-5h-utilization", "0.25")
	h.Set("anthropic-ratelimit-unified-7d-utilization", "0.5")
	h.Set("anthropic-ratelimit-unified-5h-reset", "1700003600")
	h.Set("anthropic-ratelimit-unified-representative-claim", "five_hour")
	u, ok := ParseUtilization(h, now)
	if !ok || *u.FiveHour != 0.25 || *u.SevenDay != 0.5 || u.FiveHourReset != 1700003600 || u.Claim != "five_hour" {
		t.Fatalf("oauth: %+v", u)
	}
	if w := u.Windows(); w["5h"] != 0.25 || w["7d"] != 0.5 {
		t.Fatalf("windows %v", w)
	}
	a := http.Header{}
	a.Set("anthropic-ratelimit-requests-limit", "100")
	a.Set("anthropic-ratelimit-requests-remaining", "75")
	a.Set("anthropic-ratelimit-tokens-limit", "1000")
	a.Set("anthropic-ratelimit-tokens-remaining", "900")
	u, ok = ParseUtilization(a, now)
	if w := u.Windows(); !ok || w["requests"] != 0.25 || w["tokens"] < 0.0999 || w["tokens"] > 0.1001 {
		t.Fatalf("api key: %v %+v", w, u)
	}
	if _, ok := ParseUtilization(http.Header{}, now); ok {
		t.Fatal("no headers, no utilization")
	}

	for _, tc := range []struct {
		name  string
		hdr   map[string]string
		ok    bool
		until int64
	}{
		{"not rejected", map[string]string{"anthropic-ratelimit-unified-status": "allowed"}, false, 0},
		{"unified reset", map[string]string{"anthropic-ratelimit-unified-status": "rejected", "anthropic-ratelimit-unified-reset": "1700007200"}, true, 1700007200},
		{"7d window reset", map[string]string{"anthropic-ratelimit-unified-7d-status": "rejected", "anthropic-ratelimit-unified-7d-reset": "1700100000", "anthropic-ratelimit-unified-reset": "1700003600"}, true, 1700100000},
		{"retry-after when no reset", map[string]string{"anthropic-ratelimit-unified-status": "rejected", "retry-after": "120"}, true, 1700000120},
		{"five minutes when nothing", map[string]string{"anthropic-ratelimit-unified-status": "rejected"}, true, 1700000300},
	} {
		h := http.Header{}
		for k, v := range tc.hdr {
			h.Set(k, v)
		}
		until, ok := RejectedUntil(h, now)
		if ok != tc.ok || (ok && until.Unix() != tc.until) {
			t.Errorf("%s: %v %v", tc.name, until.Unix(), ok)
		}
	}
}

func TestUtilWriterBatchesAndKeepsLatest(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	w := NewUtilWriter(rdb, time.Second, nil)
	for i := 0; i < 100; i++ {
		w.Observe("a", Utilization{FiveHour: ptr(float64(i) / 100)})
	}
	w.Observe("b", Utilization{SevenDay: ptr(0.3)})
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, _ := newHealthPool(t, rdb)
	us, err := p.Utilizations(context.Background())
	if err != nil || *us["a"].FiveHour != 0.99 || *us["b"].SevenDay != 0.3 {
		t.Fatalf("%+v %v", us, err)
	}
}

// Issue 24: the value written for an interval is its last answer's
// (trailing edge), parsed at flush time; an answer without rate-limit
// headers leaves the previous one; a flush with nothing new writes nothing.
func TestUtilWriterTrailingEdge(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	w := NewUtilWriter(rdb, time.Second, nil)
	p, _ := newHealthPool(t, rdb)
	at := time.Unix(1_800_000_000, 0)
	answer := func(five string) map[string][]string {
		h := map[string][]string{"Content-Type": {"application/json"}}
		if five != "" {
			h["Anthropic-Ratelimit-Unified-5h-Utilization"] = []string{five}
			h["Anthropic-Ratelimit-Unified-Status"] = []string{"allowed"}
		}
		return h
	}
	fiveHour := func() float64 {
		t.Helper()
		if err := w.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		us, err := p.Utilizations(context.Background())
		if err != nil || us["a"].FiveHour == nil {
			t.Fatalf("utilization of a: %+v %v", us, err)
		}
		return *us["a"].FiveHour
	}
	for i, v := range []string{"0.1", "0.2", "0.3"} {
		w.ObserveHeaders("a", answer(v), at.Add(time.Duration(i)*time.Millisecond))
	}
	w.ObserveHeaders("a", answer(""), at.Add(5*time.Millisecond))
	if got := fiveHour(); got != 0.3 {
		t.Fatalf("after three answers in one interval: 5h %v, want the last one's 0.3", got)
	}
	// A parsed value observed later wins over earlier headers, and the
	// other way round.
	w.ObserveHeaders("a", answer("0.4"), at.Add(time.Second))
	w.Observe("a", Utilization{FiveHour: ptr(0.5)})
	if got := fiveHour(); got != 0.5 {
		t.Fatalf("observed value after headers: %v, want 0.5", got)
	}
	w.Observe("a", Utilization{FiveHour: ptr(0.6)})
	w.ObserveHeaders("a", answer("0.7"), at.Add(2*time.Second))
	if got := fiveHour(); got != 0.7 {
		t.Fatalf("headers after an observed value: %v, want 0.7", got)
	}
	// Nothing new: the stored value stays (an operator's edit is not
	// overwritten by a stale copy).
	rdb.HSet(context.Background(), keyUtil, "a", `{"five_hour":0.8}`)
	if got := fiveHour(); got != 0.8 {
		t.Fatalf("a flush with nothing new wrote %v", got)
	}
}

func TestProbeable(t *testing.T) {
	for reason, want := range map[string]bool{
		"upstream 401 authentication_error: invalid x-api-key":              true,
		"upstream 403 permission_error: OAuth token has been revoked.":      true,
		"upstream 403 permission_error: organization has been disabled":     false,
		"refresh token rejected (invalid_grant)":                            false,
		"oauth refresh rejected: invalid_grant":                             false,
		"disabled":                                                          false,
		"blacklisted by the operator":                                       false,
		"upstream 401 authentication_error: OAuth refresh given up: expiry": false,
	} {
		if got := Probeable(reason); got != want {
			t.Errorf("%q: %v", reason, got)
		}
	}
}

func newNullLog() (*logrus.Logger, *test.Hook) { return test.NewNullLogger() }
