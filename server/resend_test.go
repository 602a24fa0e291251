package server

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// A POST whose response headers do not come within UPSTREAM_HEADER_TIMEOUT
// (2 s in these tests) may still be worked on upstream: it is never sent
// again, neither to the account's next base URL nor to another account.
// The customer gets 504 and the account one failure towards cooling.
func TestHeaderTimeoutIsNeverResent(t *testing.T) {
	e := newEnv(t)
	ka := "sk-ant-api03-a1-secret"
	e.fake.AddAPIKey(ka)
	e.writeAccount("high", "a1", map[string]any{"apiKey": ka, "baseURLs": []string{e.fake.URL(), e.fake.URL()}})
	e.apiAccount("high", "b1")
	u := e.start()
	key := e.issue("high", "a1")
	e.fake.InjectFault(ka, fakeupstream.Fault{HeaderDelay: 4 * time.Second})
	r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != http.StatusGatewayTimeout || r.errType() != "timeout_error" {
		t.Fatalf("a header timeout answers 504 timeout_error: %d %s", r.status, r.body)
	}
	if n := len(e.served()); n != 1 || e.served()[ka] != 1 {
		t.Fatalf("the upstream must see exactly one POST: %v", e.served())
	}
}

// A base URL that refuses the connection never saw the body: the next
// base URL of the same account serves it.
func TestRefusedBaseURLTriesTheNext(t *testing.T) {
	e := newEnv(t)
	ka := "sk-ant-api03-a1-secret"
	e.fake.AddAPIKey(ka)
	e.writeAccount("high", "a1", map[string]any{"apiKey": ka, "baseURLs": []string{refusingURL(t), e.fake.URL()}})
	u := e.start()
	key := e.issue("high", "a1")
	if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
		t.Fatalf("a refused base URL must fall through to the next: %d %s", r.status, r.body)
	}
	if got := e.served(); got[ka] != 1 {
		t.Fatalf("served %v", got)
	}
}

// refusingURL is the URL of a port nothing listens on: a dial is refused.
func refusingURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	_ = ln.Close()
	return u
}
