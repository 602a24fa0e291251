package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/keys"
)

// refusalLines are the log lines of refusals with msg.
func refusalLines(logs, msg string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "refused: "+msg) {
			out = append(out, l)
		}
	}
	return out
}

// Issue 24: one key over its quota at thousands of requests a second wrote
// a megabyte a second of 429 lines, and 401/403 refusals wrote none. Now
// each refusal is logged at info, at most once a second per key and
// reason, the next line counting the ones dropped.
func TestRefusalLinesSampledPerKeyAndReason(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk))
	trial, _ := e.tiers.Get("trial")
	trial.Quotas = map[string]int{"sonnet": 1}
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	id := keys.ID(keys.Hash(key))
	sonnet := msgBody("claude-sonnet-4-5", false)
	if r := post(t, url, "/v1/messages", key, sonnet); r.status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	const quotaMsg = "Rate limit exceeded for sonnet"
	for i := 0; i < 30; i++ {
		if r := post(t, url, "/v1/messages", key, sonnet); r.status != http.StatusTooManyRequests {
			t.Fatalf("over quota: %d %s", r.status, r.body)
		}
	}
	// Another reason of the same key has its own line.
	if r := post(t, url, "/v1/messages", key, msgBody("claude-opus-4-1", false)); r.status != http.StatusForbidden {
		t.Fatalf("opus on trial: %d", r.status)
	}
	unknown := "sk-cli-v1-" + strings.Repeat("Z", 32)
	for i := 0; i < 5; i++ {
		if r := post(t, url, "/v1/messages", unknown, sonnet); r.status != http.StatusUnauthorized {
			t.Fatalf("unknown key: %d", r.status)
		}
	}
	clk.Advance(time.Second)
	if r := post(t, url, "/v1/messages", key, sonnet); r.status != http.StatusTooManyRequests {
		t.Fatalf("over quota: %d", r.status)
	}
	e.stop(0) // flushes the batched log lines
	logs := e.logs.String()
	q := refusalLines(logs, quotaMsg)
	if len(q) != 2 || !strings.Contains(q[0], "key="+id) || !strings.Contains(q[0], "status=429") ||
		strings.Contains(q[0], "dropped=") || !strings.Contains(q[1], "dropped=29") || !strings.Contains(q[0], "level=info") {
		t.Fatalf("429 lines: want one, then one a second later with dropped=29; got:\n%s", strings.Join(q, "\n"))
	}
	if f := refusalLines(logs, "Trial tier can only use Sonnet models"); len(f) != 1 || !strings.Contains(f[0], "key="+id) || !strings.Contains(f[0], "status=403") {
		t.Fatalf("403 line: %q", f)
	}
	u := refusalLines(logs, "Unauthorized API key")
	if len(u) != 1 || !strings.Contains(u[0], "key="+keys.ID(keys.Hash(unknown))) || !strings.Contains(u[0], "status=401") {
		t.Fatalf("401 lines: want one for the unknown key; got %q", u)
	}
	if strings.Contains(logs, unknown) || strings.Contains(logs, key) {
		t.Fatal("a client key appears in the logs")
	}
}
