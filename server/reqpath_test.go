package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// remaining reads the key's sonnet quota left, through a counted request.
func remainingAfter(t *testing.T, url, key string) string {
	t.Helper()
	r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != 200 {
		t.Fatalf("probe request: %d %s", r.status, r.body)
	}
	return r.header.Get("X-Ratelimit-Remaining")
}

// STREAM_IDLE_TIMEOUT: an upstream stream that goes silent is ended, on
// the clock, with an SSE error event, and the place is given back.
func TestStreamIdleTimeoutEndsWithErrorEventAndRefund(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk))
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	hold := make(chan struct{})
	defer close(hold)
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold})
	resp, br := openStream(t, context.Background(), url, key)
	defer resp.Body.Close()
	clk.Advance(5 * time.Minute)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"") {
		t.Fatalf("an idle stream must end with an error event: %q", rest)
	}
	e.srvs[0].handlers.Wait()
	if got := remainingAfter(t, url, key); got != "41" {
		t.Fatalf("remaining %s after an idle-ended stream and one answer, want 41 (the idle one refunded)", got)
	}
}

// A request the client abandons counts, also before the upstream's
// headers came (docs/contract.md).
func TestClientAbandonCounts(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	e.fake.InjectFault(apiKey, fakeupstream.Fault{HeaderDelay: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for e.fake.InFlight() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/messages", strings.NewReader(msgBody("claude-sonnet-4-5", false)))
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("X-Api-Key", key)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request was meant to be abandoned")
	}
	e.srvs[0].handlers.Wait()
	if got := remainingAfter(t, url, key); got != "40" {
		t.Fatalf("remaining %s, want 40: the abandoned request counts", got)
	}
}

// Client headers that fold to a credential name never reach the
// upstream, and the account's rate-limit and organization headers never
// reach the customer.
func TestCredentialLookalikesDroppedAndAccountHeadersHidden(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "h1")
	access, _ := e.oauthAccount("supreme", "s1", time.Now().Add(8*time.Hour))
	e.fake.SetUtilization(access, 0.5, 0.25)
	url := e.start()
	for _, tier := range []string{"high", "supreme"} {
		key := e.issue(tier)
		r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false),
			"x_api_key", "sk-ant-api03-customer", "X-Api_Key", "sk-ant-api03-customer2", "Cookie", "a=b")
		if r.status != 200 {
			t.Fatalf("%s: %d %s", tier, r.status, r.body)
		}
		reqs := e.fake.Requests()
		last := reqs[len(reqs)-1]
		for k, vv := range last.Header {
			for _, v := range vv {
				if strings.Contains(v, "customer") || strings.EqualFold(k, "cookie") {
					t.Fatalf("%s: client header %s: %s reached the upstream", tier, k, v)
				}
			}
		}
		for k := range r.header {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, "anthropic-ratelimit") || lk == "anthropic-organization-id" {
				t.Fatalf("%s: the customer saw the account's %s", tier, k)
			}
		}
		if r.header.Get("X-Ratelimit-Remaining") == "" || r.header.Get("Request-Id") == "" {
			t.Fatalf("%s: the key's quota headers and request-id must stay: %v", tier, r.header)
		}
	}
}
