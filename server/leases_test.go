package server

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/app"
	"github.com/claude-route/claude-route/concurrency"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/tiers"
)

// queued is how many requests wait in the key's concurrency queue.
func (e *env) queued(key string) int64 {
	e.t.Helper()
	n, err := e.apps[0].Store.Client.ZCard(context.Background(), "cr:cc:{"+keys.Hash(key)+"}:q").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// until waits for cond, checking it as the system moves (no timed assertion:
// a wait that never ends is the test's own timeout).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func isBusy(t *testing.T, r reply, n int) {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.errType() != "rate_limit_error" ||
		r.errMessage() != "Too many concurrent requests for this key ("+strconv.Itoa(n)+")" || r.header.Get("Retry-After") != "1" ||
		r.header.Get("X-Should-Retry") == "false" {
		t.Fatalf("want 429 too many concurrent requests with retry-after 1 (retryable), got %d %q x-should-retry %q %s",
			r.status, r.header.Get("Retry-After"), r.header.Get("X-Should-Retry"), r.body)
	}
}

// Issue 11: with concurrency 2, six simultaneous streamed requests on one
// key, spread over two instances sharing Redis: at most two are upstream at
// any moment, the others wait without a byte sent, and all six finish 200.
func TestConcurrencyLeasesAcrossInstances(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("trial", "t1") // trial: concurrency 2
	u1, u2 := e.start(), e.start()
	key := e.issue("trial")
	replies := heldStreams(t, e, apiKey, key, 6, func() bool { return e.fake.InFlight() == 2 && e.queued(key) == 4 }, u1, u2)
	for i, r := range replies {
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if p := e.fake.PeakInFlight(); p != 2 {
		t.Fatalf("peak upstream in flight %d, want 2 (the tier's concurrency)", p)
	}
	if n := e.fake.MessageCount(); n != 6 {
		t.Fatalf("upstream served %d, want 6", n)
	}
}

// A request that waits longer than QUEUE_WAIT gets 429 with retry-after 1,
// and a key cannot queue more than 2×N: the next is refused at once.
func TestConcurrencyQueueWaitAndLimit(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk), withApp(func(c *app.Config) {
		c.Capacity.QueueWait = 30 * time.Second
		c.Capacity.LeaseTTL = 10 * time.Second
	}))
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	hold := make(chan struct{})
	defer close(hold)
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold, Times: 2})
	var held, waited sync.WaitGroup
	for i := 0; i < 2; i++ {
		held.Add(1)
		go func() {
			defer held.Done()
			if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true)); r.status != http.StatusOK {
				t.Errorf("held request: %d %s", r.status, r.body)
			}
		}()
	}
	until(t, "two upstream", func() bool { return e.fake.InFlight() == 2 })
	waiting := make([]reply, 4)
	for i := range waiting {
		waited.Add(1)
		go func(i int) {
			defer waited.Done()
			waiting[i] = post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true))
		}(i)
	}
	until(t, "four queued", func() bool { return e.queued(key) == 4 })
	// The queue holds 2×N = 4: the seventh is refused at once.
	isBusy(t, post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true)), 2)
	// QUEUE_WAIT passes (the held leases are renewed on the way).
	clk.Advance(31 * time.Second)
	waited.Wait()
	for _, r := range waiting {
		isBusy(t, r, 2)
	}
	if n := e.fake.MessageCount(); n != 2 {
		t.Fatalf("upstream saw %d requests; waiting ones must never reach it", n)
	}
	if p := e.fake.PeakInFlight(); p > 2 {
		t.Fatalf("peak upstream in flight %d", p)
	}
}

// A replica that dies holding a key's places (it never releases nor
// renews them) gives them back within LeaseTTL: a request waiting on a
// live instance is then admitted.
func TestDeadReplicaPlacesComeBack(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk), withApp(func(c *app.Config) {
		c.Capacity.QueueWait = time.Minute
		c.Capacity.LeaseTTL = 10 * time.Second
	}))
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	// The dead replica: it took both places and its process is gone.
	dead := concurrency.New(e.apps[0].Store.Client, concurrency.Config{Clock: clk, LeaseTTL: 10 * time.Second})
	for i := 0; i < 2; i++ {
		if _, err := dead.Acquire(context.Background(), keys.Hash(key), 2); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan reply, 1)
	go func() { done <- post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)) }()
	until(t, "the request queued", func() bool { return e.queued(key) == 1 })
	select {
	case r := <-done:
		t.Fatalf("admitted while the dead replica's leases live: %d %s", r.status, r.body)
	default:
	}
	clk.Advance(11 * time.Second)
	if r := <-done; r.status != http.StatusOK {
		t.Fatalf("after the dead replica's leases expired: %d %s", r.status, r.body)
	}
}

// A tier from a file that names no concurrency has no per-key limit, as
// before the limit existed: six streams of one key are upstream at once.
func TestTierWithoutConcurrencyHasNoLimit(t *testing.T) {
	tt, err := tiers.Parse([]byte(`{"tiers":[{"name":"open","slots":5}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.tiers = tt
	apiKey := e.apiAccount("open", "o1")
	url := e.start()
	key := e.issue("open")
	replies := heldStreams(t, e, apiKey, key, 6, func() bool { return e.fake.InFlight() == 6 }, url)
	for i, r := range replies {
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
}

// heldStreams sends n streamed requests of one key at once, spread over
// urls, while the upstream holds its answers; once ready() it releases
// them and returns the replies.
func heldStreams(t *testing.T, e *env, apiKey, key string, n int, ready func() bool, urls ...string) []reply {
	t.Helper()
	hold := make(chan struct{})
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold, Times: n})
	e.fake.Reset()
	var wg sync.WaitGroup
	replies := make([]reply, n)
	for i := range replies {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			replies[i] = post(t, urls[i%len(urls)], "/v1/messages", key, msgBody("claude-sonnet-4-5", true))
		}(i)
	}
	until(t, "the held streams in place", ready)
	close(hold)
	wg.Wait()
	return replies
}
