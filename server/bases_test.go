package server

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// Issue 24: a dead primary base URL cost every request a connect attempt
// (up to the 10 s dial timeout). A base that fails to connect, or answers
// 529 or 5xx before any body, is skipped with backoff now: the second
// request makes no dial there and no call; after the backoff one request
// probes it and, healthy again, it is first again.
func TestFailingFirstBaseURLIsSkipped(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	var overloadedCalls atomic.Int64
	overloaded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		overloadedCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(529)
		_, _ = w.Write([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`))
	}))
	defer overloaded.Close()
	cases := []struct {
		name  string
		first string
		calls func() int64 // dials or calls the first base got
	}{
		{"dead first base", "http://" + dead, nil},
		{"first base answers 529", overloaded.URL, func() int64 { return overloadedCalls.Load() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var deadDials atomic.Int64
			tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == dead {
					deadDials.Add(1)
				}
				return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			}}
			calls := c.calls
			if calls == nil {
				calls = deadDials.Load
			}
			overloadedCalls.Store(0)
			clk := clock.NewFake(time.Now())
			e := newEnv(t, withClock(clk), withServerConfig(func(cfg *Config) { cfg.Transport = tr }))
			apiKey := "sk-ant-api03-bases"
			e.fake.AddAPIKey(apiKey)
			e.writeAccount("high", "a1", map[string]any{"apiKey": apiKey, "baseURLs": []string{c.first, e.fake.URL()}})
			u := e.start()
			key := e.issue("high")
			ask := func(step string) {
				t.Helper()
				if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK {
					t.Fatalf("%s: %d %s", step, r.status, r.body)
				}
			}
			ask("first request")
			if n := calls(); n != 1 {
				t.Fatalf("first request: the first base got %d tries, want 1", n)
			}
			ask("second request")
			if n := calls(); n != 1 {
				t.Fatalf("second request: the first base got %d tries in all, want no new one", n)
			}
			if got := e.served(); got[apiKey] != 2 {
				t.Fatalf("the second base served %d, want 2", got[apiKey])
			}
			clk.Advance(10 * time.Second)
			ask("after the backoff")
			if n := calls(); n != 2 {
				t.Fatalf("after the backoff the first base is probed once: %d tries in all", n)
			}
			ask("while backing off again")
			if n := calls(); n != 2 {
				t.Fatalf("a failed probe backs off again: %d tries in all", n)
			}
		})
	}
}
