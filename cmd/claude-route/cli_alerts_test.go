package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
)

// TestAlertsCommands: `alerts test` reaches ALERT_WEBHOOK_URL and `alerts`
// lists it.
func TestAlertsCommands(t *testing.T) {
	var posts atomic.Int32
	var body atomic.Value
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body.Store(string(b))
		posts.Add(1)
	}))
	defer hook.Close()
	env := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "REDIS_URL": testenv.RedisURL(t, 8), "ACCOUNT_DIR": t.TempDir(), "PRODUCT_DIR": t.TempDir(),
		"ADMIN_TOKEN": "op-token-for-alerts-test", "ALERT_WEBHOOK_URL": hook.URL,
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- cmdServe(ctx, envOf(env), io.Discard, ready) }()
	select {
	case addr := <-ready:
		env["CLAUDE_ROUTE_URL"] = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("serve stopped before it was ready: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(ctx, args, envOf(env), &out, &errb)
		return out.String() + errb.String(), code
	}
	if out, code := cli("alerts", "test"); code != 0 || posts.Load() != 1 || !strings.Contains(body.Load().(string), `"event":"test"`) {
		t.Fatalf("alerts test: %d %q, %d posts", code, out, posts.Load())
	}
	if out, code := cli("alerts"); code != 0 || !strings.Contains(out, "test alert") || !strings.Contains(out, "EVENT") {
		t.Fatalf("alerts: %d %q", code, out)
	}
	if out, code := cli("alerts", "--json"); code != 0 || !strings.Contains(out, `"event": "test"`) {
		t.Fatalf("alerts --json: %d %q", code, out)
	}
	if _, code := cli("alerts", "bogus"); code != 2 {
		t.Fatalf("alerts bogus: %d, want 2", code)
	}
}
