package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// Issue 24: a plain 429 (no anthropic-ratelimit-unified-* headers), as
// API-key accounts and Anthropic-compatible relays send it, reached the
// customer and left the account "ok". Now the account rests for its
// retry-after (60 s when absent, at most 10 minutes), the request
// overflows once to another account of the tier, and the pool shows the
// account limited until then.
func TestPlain429CoolsTheAccountAndOverflows(t *testing.T) {
	cases := []struct {
		name       string
		retryAfter string
		rest       time.Duration
	}{
		{"retry-after 30", "30", 30 * time.Second},
		{"no retry-after", "", time.Minute},
		{"retry-after capped", "86400", 10 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := clock.NewFake(time.Now().Truncate(time.Second))
			e := newEnv(t, withClock(clk))
			ka := e.apiAccount("high", "a1")
			kb := e.apiAccount("high", "b1")
			u := e.start()
			key := e.issue("high", "a1")
			f := fakeupstream.Fault{Status: http.StatusTooManyRequests}
			if c.retryAfter != "" {
				f.Headers = map[string]string{"retry-after": c.retryAfter}
			}
			e.fake.InjectFault(ka, f)
			if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
				t.Fatalf("a plain 429 must overflow: %d %s", r.status, r.body)
			}
			if got := e.served(); got[kb] != 1 {
				t.Fatalf("b1 must have served: %v", got)
			}
			e.srvs[0].handlers.Wait()
			a := e.poolAccount("high", "a1")
			if a.LimitedTill == nil || !a.LimitedTill.Equal(clk.Now().Add(c.rest)) {
				t.Fatalf("a1 must be limited until now+%s: %+v", c.rest, a.LimitedTill)
			}
			// Limited: the key's next request does not call a1.
			if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
				t.Fatalf("while a1 rests: %d", r.status)
			}
			if got := e.served(); got[ka] != 1 || got[kb] != 2 {
				t.Fatalf("a resting account must not be called: %v", got)
			}
			clk.Advance(c.rest + time.Second)
			if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
				t.Fatalf("after the rest: %d", r.status)
			}
			if got := e.served(); got[ka] != 2 {
				t.Fatalf("after its rest the key goes back to a1: %v", got)
			}
		})
	}
}
