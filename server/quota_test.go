package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/keys"
)

// Two instances, one fresh trial key, 60 concurrent sonnet requests:
// exactly the quota is served and the rest refused with retry-after.
func TestQuotaNeverOvershootsAcrossInstances(t *testing.T) {
	e := newEnv(t)
	// The quota is under test, not the key's concurrency: room for all 60.
	trial, _ := e.tiers.Get("trial")
	trial.Concurrency = 60
	e.apiAccount("trial", "t1")
	u1, u2 := e.start(), e.start()
	key := e.issue("trial")
	var wg sync.WaitGroup
	var mu sync.Mutex
	served, refused := 0, 0
	start := make(chan struct{})
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			url := u1
			if i%2 == 1 {
				url = u2
			}
			// A 503 (the store took longer than the request's budget, as
			// on a loaded machine) is retried, as the README tells clients
			// to: it must not have kept a place, so the totals stay exact.
			r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5-20250929", false))
			for try := 0; r.status == http.StatusServiceUnavailable && try < 20; try++ {
				r = post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5-20250929", false))
			}
			mu.Lock()
			defer mu.Unlock()
			switch r.status {
			case 200:
				served++
			case 429:
				refused++
				ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
				if ra < 1 || ra > 5*3600 || r.errType() != "rate_limit_error" ||
					r.errMessage() != "Rate limit exceeded for sonnet (42/42 in 5 hours)" {
					t.Errorf("refusal: retry-after %q, %s", r.header.Get("Retry-After"), r.body)
				}
			default:
				t.Errorf("status %d: %s", r.status, r.body)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if served != 42 || refused != 18 {
		t.Fatalf("served %d refused %d, want 42/18", served, refused)
	}
	if n := e.fake.MessageCount(); n != 42 {
		t.Fatalf("refused requests must not reach the upstream: upstream saw %d", n)
	}
}

func TestHighTierOpusQuotaOthersUnlimited(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	for i := 1; i <= 10; i++ {
		r := post(t, url, "/v1/messages", key, msgBody("claude-opus-4-1-20250805", false))
		if r.status != 200 {
			t.Fatalf("opus %d: %d", i, r.status)
		}
		if r.header.Get("X-Ratelimit-Limit") != "10" || r.header.Get("X-Ratelimit-Remaining") != strconv.Itoa(10-i) {
			t.Fatalf("opus %d: headers limit %q remaining %q", i, r.header.Get("X-Ratelimit-Limit"), r.header.Get("X-Ratelimit-Remaining"))
		}
		if _, err := time.Parse(time.RFC3339, r.header.Get("X-Ratelimit-Reset")); err != nil {
			t.Fatalf("reset header: %v", err)
		}
	}
	r := post(t, url, "/v1/messages", key, msgBody("claude-opus-4-1-20250805", false))
	if r.status != 429 || r.errMessage() != "Rate limit exceeded for opus (10/10 in 5 hours)" {
		t.Fatalf("11th opus: %d %s", r.status, r.body)
	}
	// Issue 24: an exhausted quota is not worth a retry; without this
	// header the SDKs sleep the whole retry-after (hours).
	if got := r.header.Get("X-Should-Retry"); got != "false" {
		t.Fatalf("11th opus: x-should-retry %q, want false", got)
	}
	for i := 0; i < 15; i++ {
		if r := post(t, url, "/v1/messages", key, msgBody("claude-haiku-4-5-20251001", false)); r.status != 200 {
			t.Fatalf("haiku must stay unlimited: %d", r.status)
		}
	}
	// count_tokens is never counted, even with the opus quota used up.
	for i := 0; i < 5; i++ {
		if r := post(t, url, "/v1/messages/count_tokens", key, msgBody("claude-opus-4-1-20250805", false)); r.status != 200 {
			t.Fatalf("count_tokens: %d %s", r.status, r.body)
		}
	}
}

func TestRefundWhenUpstreamProducedNoAnswer(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk))
	k := e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	used := func() int {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/usage", nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var u struct {
			Tier     string
			Account  string
			Families map[string]struct {
				Used, Limit int
				Reset       string
			}
		}
		_ = json.NewDecoder(resp.Body).Decode(&u)
		if u.Tier != "high" || u.Account != "h1" || u.Families["opus"].Limit != 10 {
			t.Fatalf("usage: %+v", u)
		}
		return u.Families["opus"].Used
	}
	opus := msgBody("claude-opus-4-1-20250805", true)
	post(t, url, "/v1/messages", key, opus)
	if used() != 1 {
		t.Fatalf("one served request counts")
	}
	for _, f := range []fakeupstream.Fault{
		{Status: 529},
		{Status: 500},
		{Status: 429},
		{DropAfterEvents: 3},
	} {
		e.fake.InjectFault(k, f)
		r := post(t, url, "/v1/messages", key, opus)
		if f.Status != 0 && r.status != f.Status {
			t.Fatalf("fault %+v: status %d", f, r.status)
		}
		if got := used(); got != 1 {
			t.Fatalf("fault %+v: used %d, want the place refunded", f, got)
		}
		// A plain 429 rests the only account for a minute (issue 24).
		clk.Advance(61 * time.Second)
	}
	// docs/contract.md: an upstream 400 invalid_request_error, 413 or 404
	// produced no answer and gives the place back, as does a stream that
	// ends with an error event.
	for _, f := range []fakeupstream.Fault{
		{Status: 400, ErrorType: "invalid_request_error"},
		{Status: 413},
		{Status: 404},
		{ErrorEventAfter: 2},
	} {
		e.fake.InjectFault(k, f)
		post(t, url, "/v1/messages", key, opus)
		if got := used(); got != 1 {
			t.Fatalf("fault %+v: used %d, want the place refunded", f, got)
		}
	}
	post(t, url, "/v1/messages", key, opus)
	if used() != 2 {
		t.Fatal("a served request counts")
	}
	_ = fmt.Sprint
}

// A key's requests in quick succession are admitted on spares (places its
// window took ahead of them): the headers still count one by one, the
// upstream sees every request, and a graceful stop leaves in the window
// exactly the requests served, no spare.
func TestQuotaSparesCountExactlyAndSettleAtShutdown(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	counter := &testenv.RoundTrips{SpareSHA: e.apps[0].Limiter.SpareHash()}
	e.apps[0].Store.Client.AddHook(counter)
	for i := 1; i <= 12; i++ {
		r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5-20250929", i%2 == 0))
		if r.status != 200 || r.header.Get("X-Ratelimit-Remaining") != strconv.Itoa(42-i) {
			t.Fatalf("request %d: %d, remaining %q, want %d", i, r.status, r.header.Get("X-Ratelimit-Remaining"), 42-i)
		}
	}
	if n := e.fake.MessageCount(); n != 12 {
		t.Fatalf("upstream saw %d, want 12", n)
	}
	e.stop(0)
	spareRuns := 0
	for _, trip := range counter.Names() {
		if len(trip) == 1 && trip[0] == "spare-run" {
			spareRuns++
		}
	}
	if spareRuns == 0 {
		t.Fatalf("no spare was taken: %v", counter.Names())
	}
	rdb := e.rdb()
	zs, err := rdb.ZRangeWithScores(context.Background(), "cr:rl:"+keys.Hash(key)+":sonnet", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range zs {
		if z.Score >= 1e15 {
			t.Errorf("a spare (%v) outlived the shutdown", z.Member)
		}
	}
	if len(zs) != 12 {
		t.Fatalf("window holds %d, want the 12 served", len(zs))
	}
}

// A replica holding spares of a key's window (places taken ahead of its
// requests) must not cost the key its last places on another replica:
// the request that finds the window full of them waits for them to be
// used or given back and is served; only then is the quota used up.
func TestQuotaLastPlacesNotLostToAnotherReplicasSpares(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	a, b := e.start(), e.start()
	key := e.issue("trial")
	body := msgBody("claude-sonnet-4-5-20250929", false)
	for range 3 { // requests close together: a takes a spare
		if r := post(t, a, "/v1/messages", key, body); r.status != 200 {
			t.Fatalf("on a: %d %s", r.status, r.body)
		}
	}
	served := 3
	for i := 0; ; i++ {
		r := post(t, b, "/v1/messages", key, body)
		if r.status == 429 {
			if r.errMessage() != "Rate limit exceeded for sonnet (42/42 in 5 hours)" {
				t.Fatalf("refusal: %s", r.body)
			}
			break
		}
		if r.status != 200 {
			t.Fatalf("request %d on b: %d %s", i+1, r.status, r.body)
		}
		served++
		if i > 50 {
			t.Fatal("never refused")
		}
	}
	if served != 42 || e.fake.MessageCount() != 42 {
		t.Fatalf("served %d (upstream saw %d), want the whole quota of 42", served, e.fake.MessageCount())
	}
}
