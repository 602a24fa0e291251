package alerts

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

// receiver is a local webhook that records bodies; it answers the first
// fail posts with 500.
type receiver struct {
	mu    sync.Mutex
	got   []Event
	tries int
	fail  int
	srv   *httptest.Server
}

func newReceiver(t *testing.T, fail int) *receiver {
	r := &receiver{fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.tries++
		if r.tries <= r.fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var e Event
		if err := json.Unmarshal(b, &e); err != nil || req.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.got = append(r.got, e)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) events() ([]Event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.got...), r.tries
}

// waitFor polls cond (the sender works in its own goroutine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func runSender(t *testing.T, s *Sender) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestOnceAcrossSendersAndDedup: two senders (two replicas) emit the same
// event; the receiver gets it once, the recent list holds it once, and the
// same event for the same subject is held back for the dedup period.
func TestOnceAcrossSendersAndDedup(t *testing.T) {
	rdb := testenv.Redis(t, 13)
	rcv := newReceiver(t, 0)
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	a := New(rdb, Config{URL: rcv.srv.URL, Clock: clk})
	b := New(testenv.Redis(t, 13), Config{URL: rcv.srv.URL, Clock: clk})
	runSender(t, a)
	runSender(t, b)
	ev := Event{Event: AccountBlacklisted, Account: "a1", Tier: "high", Text: "a1 blacklisted"}
	a.Emit(ev)
	b.Emit(ev)
	a.Emit(Event{Event: AccountBlacklisted, Account: "a2", Text: "a2 blacklisted"})
	waitFor(t, "two events", func() bool { got, _ := rcv.events(); return len(got) >= 2 })
	// Give a duplicate every chance to show up: a later event from b
	// arrives after b has handled its copy of the first.
	b.Emit(Event{Event: StoreBack, Text: "marker"})
	waitFor(t, "the marker", func() bool { got, _ := rcv.events(); return len(got) >= 3 })
	got, _ := rcv.events()
	if len(got) != 3 {
		t.Fatalf("got %d events, want 3 (each once): %+v", len(got), got)
	}
	recent, err := a.Recent(context.Background())
	if err != nil || len(recent) != 3 || recent[0].Event != StoreBack {
		t.Fatalf("recent: %v %+v", err, recent)
	}
	// Within 15 minutes the same event for a1 is not sent again.
	a.Emit(ev)
	b.Emit(Event{Event: AccountRecovered, Account: "a1", Text: "back"})
	waitFor(t, "the recovery", func() bool { got, _ := rcv.events(); return len(got) >= 4 })
	if got, _ := rcv.events(); len(got) != 4 || got[3].Event != AccountRecovered {
		t.Fatalf("after a repeat within 15 min: %+v", got)
	}
}

// TestRetryAfter500: a receiver that answers 500 once gets the event on
// the retry, which waits for the backoff. The sender's steps are called
// directly, on a fake clock, so nothing depends on scheduling.
func TestRetryAfter500(t *testing.T) {
	rdb := testenv.Redis(t, 13)
	rcv := newReceiver(t, 1)
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := New(rdb, Config{URL: rcv.srv.URL, Clock: clk, RetryBase: 30 * time.Second})
	ctx := context.Background()
	s.handle(ctx, Event{Event: TierFull, Tier: "high", Text: "full", At: clk.Now()})
	s.posts.Wait()
	if _, n := rcv.events(); n != 1 {
		t.Fatalf("first try: %d", n)
	}
	clk.Advance(29 * time.Second)
	next, ok := s.retryDue(ctx)
	if _, n := rcv.events(); n != 1 || !ok || !next.Equal(clk.Now().Add(time.Second)) {
		t.Fatalf("before the backoff: %d tries, next %v %v", n, next, ok)
	}
	clk.Advance(time.Second)
	s.retryDue(ctx)
	s.posts.Wait()
	if _, ok := s.retryDue(ctx); ok {
		t.Fatal("a retry is still pending after a success")
	}
	if got, n := rcv.events(); n != 2 || len(got) != 1 || got[0].Event != TierFull || got[0].Tier != "high" {
		t.Fatalf("after the retry: %d tries, %+v", n, got)
	}
}

// TestRetryGivesUpAfterRetryFor: a receiver that never takes the event is
// tried with a growing backoff until RetryFor has passed, then dropped.
func TestRetryGivesUpAfterRetryFor(t *testing.T) {
	rdb := testenv.Redis(t, 13)
	rcv := newReceiver(t, 1<<30)
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := New(rdb, Config{URL: rcv.srv.URL, Clock: clk})
	ctx := context.Background()
	s.handle(ctx, Event{Event: StoreDown, Text: "down", At: clk.Now()})
	s.posts.Wait()
	for range 20 {
		clk.Advance(time.Minute)
		s.retryDue(ctx)
		s.posts.Wait()
	}
	// Backoff 2, 4, 8, 16, 32 s then a minute: one try per minute-step
	// from the first minute to the tenth, then the event is dropped.
	if _, n := rcv.events(); n != 11 {
		t.Fatalf("%d tries, want 11", n)
	}
	if _, ok := s.retryDue(ctx); ok {
		t.Fatal("a post is still pending after 10 minutes")
	}
}

func TestBackoff(t *testing.T) {
	s := New(nil, Config{RetryBase: 2 * time.Second})
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{1, 2 * time.Second}, {2, 4 * time.Second}, {3, 8 * time.Second}, {6, 60 * time.Second}, {20, 60 * time.Second}} {
		if got := s.backoff(c.n); got != c.want {
			t.Errorf("backoff(%d) = %s, want %s", c.n, got, c.want)
		}
	}
}

// TestDiff: each pool change makes its event, once, and the operator's
// own disable makes none.
func TestDiff(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := func() *snapshot {
		return &snapshot{bl: map[string]accounts.BlacklistEntry{}, limited: map[string]time.Time{}, cooling: map[string]time.Time{},
			tier: map[string]tierLoad{"high": {used: 5, total: 10}}, acctTier: map[string]string{"a": "high", "b": "high"}}
	}
	cases := []struct {
		name   string
		change func(s *snapshot)
		want   []string
	}{
		{"nothing", func(*snapshot) {}, nil},
		{"blacklisted", func(s *snapshot) { s.bl["a"] = accounts.BlacklistEntry{Reason: "invalid bearer token", Since: now} }, []string{AccountBlacklisted}},
		{"disabled", func(s *snapshot) { s.bl["a"] = accounts.BlacklistEntry{Reason: accounts.DisabledReason} }, nil},
		{"limited", func(s *snapshot) { s.limited["b"] = now.Add(time.Hour) }, []string{AccountLimited}},
		{"cooling", func(s *snapshot) { s.cooling["b"] = now.Add(time.Minute) }, []string{AccountCooling}},
		{"90 %", func(s *snapshot) { s.tier["high"] = tierLoad{used: 9, total: 10} }, []string{TierNearlyFull}},
		{"full", func(s *snapshot) { s.tier["high"] = tierLoad{used: 10, total: 10} }, []string{TierFull}},
		{"89 %", func(s *snapshot) { s.tier["high"] = tierLoad{used: 8, total: 9} }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cur := base()
			c.change(cur)
			var got []string
			for _, e := range diff(base(), cur) {
				got = append(got, e.Event)
				if e.Text == "" {
					t.Errorf("%s has no text", e.Event)
				}
			}
			if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) {
				t.Fatalf("events %v, want %v", got, c.want)
			}
			if again := diff(cur, cur); len(again) != 0 {
				t.Fatalf("an unchanged pool made %d events", len(again))
			}
		})
	}
	// Recovery: off the blacklist and still in the pool.
	prev := base()
	prev.bl["a"] = accounts.BlacklistEntry{Reason: "x"}
	if evs := diff(prev, base()); len(evs) != 1 || evs[0].Event != AccountRecovered || evs[0].Account != "a" {
		t.Fatalf("recovery: %+v", evs)
	}
	gone := base()
	delete(gone.acctTier, "a")
	if evs := diff(prev, gone); len(evs) != 0 {
		t.Fatalf("a removed account is not recovered: %+v", evs)
	}
}

// flakyPool fails its reads while down is set.
type flakyPool struct {
	mu   sync.Mutex
	down bool
	n    int
}

func (f *flakyPool) ViewSlots(ctx context.Context, tiers []string, slotsOf func(string) int) (map[string][]accounts.AccountView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.down {
		return nil, context.DeadlineExceeded
	}
	return map[string][]accounts.AccountView{}, nil
}

func (f *flakyPool) set(down bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	return f.n
}

func (f *flakyPool) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

type chanEmitter chan Event

func (c chanEmitter) Emit(e Event) { c <- e }

// TestWatcherStoreDownAndBack: two failed reads in a row are "store down",
// the next good one "store back", each once.
func TestWatcherStoreDownAndBack(t *testing.T) {
	pool := &flakyPool{}
	out := make(chanEmitter, 10)
	w := &Watcher{Pool: pool, Tiers: func() []string { return nil }, SlotsOf: func(string) int { return 0 },
		Out: out, Clock: clock.Real{}, Every: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-w.Ready()
	n := pool.set(true)
	waitFor(t, "failed reads", func() bool { return pool.reads() >= n+4 })
	n = pool.set(false)
	waitFor(t, "good reads", func() bool { return pool.reads() >= n+3 })
	var got []string
	for len(out) > 0 {
		got = append(got, (<-out).Event)
	}
	if len(got) != 2 || got[0] != StoreDown || got[1] != StoreBack {
		t.Fatalf("events %v, want store_down then store_back", got)
	}
}
