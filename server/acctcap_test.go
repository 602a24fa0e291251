package server

import (
	"net/http"
	"testing"

	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// Issue 24: an account's "max_concurrency" (else its tier's
// account_concurrency) caps its requests in flight; a request that finds
// its account full is served by another account of the tier, and gets 503
// with retry-after 1 when none can.
func TestFullAccountOverflows(t *testing.T) {
	e := newEnv(t)
	high, _ := e.tiers.Get("high")
	high.AccountConcurrency = 5 // the file's max_concurrency wins
	e.fake.AddAPIKey("sk-ant-api03-capped")
	e.writeAccount("high", "a1", map[string]any{"apiKey": "sk-ant-api03-capped", "max_concurrency": 1})
	kb := e.apiAccount("high", "b1")
	u := e.start()
	key := e.issue("high", "a1")
	hold := make(chan struct{})
	e.fake.InjectFault("sk-ant-api03-capped", fakeupstream.Fault{Hold: hold})
	first := make(chan reply, 1)
	go func() { first <- post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)) }()
	until(t, "the first request upstream", func() bool { return e.fake.InFlight() == 1 })
	if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
		t.Fatalf("a full account's key: %d %s", r.status, r.body)
	}
	if got := e.served(); got[kb] != 1 {
		t.Fatalf("b1 must serve while a1 is full: %v", got)
	}
	close(hold)
	if r := <-first; r.status != http.StatusOK {
		t.Fatalf("the first request: %d", r.status)
	}
	// Its place came back: a1 serves its key again.
	if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	if got := e.served(); got["sk-ant-api03-capped"] != 2 {
		t.Fatalf("a1 after its place came back: %v", got)
	}
}

// The tier's default applies to an account without max_concurrency; with
// no other account the request gets 503 and retry-after 1.
func TestFullAccountWithoutOverflowIs503(t *testing.T) {
	e := newEnv(t)
	high, _ := e.tiers.Get("high")
	high.AccountConcurrency = 1
	ka := e.apiAccount("high", "a1")
	u := e.start()
	key := e.issue("high", "a1")
	hold := make(chan struct{})
	e.fake.InjectFault(ka, fakeupstream.Fault{Hold: hold})
	first := make(chan reply, 1)
	go func() { first <- post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)) }()
	until(t, "the first request upstream", func() bool { return e.fake.InFlight() == 1 })
	r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != http.StatusServiceUnavailable || r.errType() != "overloaded_error" || r.header.Get("Retry-After") != "1" {
		t.Fatalf("full, nowhere to overflow: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	close(hold)
	if r := <-first; r.status != http.StatusOK {
		t.Fatalf("the first request: %d", r.status)
	}
}
