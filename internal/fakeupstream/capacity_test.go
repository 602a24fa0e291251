package fakeupstream

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const msgBody = `{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`

func TestCapacityFaults(t *testing.T) {
	s := start(t, Options{})
	s.AddOAuth("oat", "ort", time.Now().Add(time.Hour))
	s.AddAPIKey("key")
	s.SetUtilization("oat", 0.4, 0.7)
	s.SetUtilization("key", 0.25, 0)
	_, h, _ := call(t, s, http.MethodPost, "/v1/messages", oauthHeaders("oat"), msgBody)
	if h.Get("anthropic-ratelimit-unified-5h-utilization") != "0.4" || h.Get("anthropic-ratelimit-unified-7d-utilization") != "0.7" {
		t.Fatalf("oauth utilization headers: %v", h)
	}
	_, h, _ = call(t, s, http.MethodPost, "/v1/messages", keyHeaders("key"), msgBody)
	if h.Get("anthropic-ratelimit-requests-remaining") != "3000" {
		t.Fatalf("api key remaining: %v", h.Get("anthropic-ratelimit-requests-remaining"))
	}

	reset := time.Now().Add(time.Hour)
	s.RejectLimit("oat", reset, 1)
	st, h, _ := call(t, s, http.MethodPost, "/v1/messages", oauthHeaders("oat"), msgBody)
	if st != 429 || h.Get("anthropic-ratelimit-unified-status") != "rejected" || h.Get("anthropic-ratelimit-unified-reset") != strconv.FormatInt(reset.Unix(), 10) {
		t.Fatalf("rejected 429: %d %v", st, h)
	}

	s.RevokeWith403("oat")
	st, _, b := call(t, s, http.MethodPost, "/v1/messages", oauthHeaders("oat"), msgBody)
	if st != 403 || !strings.Contains(string(b), "OAuth token has been revoked") {
		t.Fatalf("revoked: %d %s", st, b)
	}

	s.Overload("key", 3)
	for i := 0; i < 3; i++ {
		if st, _, _ := call(t, s, http.MethodPost, "/v1/messages", keyHeaders("key"), msgBody); st != 529 {
			t.Fatalf("burst %d: %d", i, st)
		}
	}
	if st, _, _ := call(t, s, http.MethodPost, "/v1/messages", keyHeaders("key"), msgBody); st != 200 {
		t.Fatalf("after the burst: %d", st)
	}
	s.RemoveAPIKey("key")
	if st, _, _ := call(t, s, http.MethodPost, "/v1/messages/count_tokens", keyHeaders("key"), msgBody); st != 401 {
		t.Fatalf("removed key: %d", st)
	}
}
