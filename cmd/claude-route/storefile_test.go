package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// With no REDIS_URL, a restart keeps what only the store knows: a key's
// usage totals, the blacklist and its reason, the alerts; STORE_FILE holds
// them between the two runs.
func TestEmbeddedStoreKeepsItsDataAcrossARestart(t *testing.T) {
	fake := fakeupstream.Start(fakeupstream.Options{})
	defer fake.Close()
	fake.AddAPIKey("sk-ant-api03-keep1")
	fake.AddAPIKey("sk-ant-api03-keep2")
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hook.Close()
	acct, prod, data := t.TempDir(), t.TempDir(), t.TempDir()
	_ = os.MkdirAll(filepath.Join(acct, "high"), 0o700)
	_ = os.WriteFile(filepath.Join(acct, "high", "h1.json"), []byte(`{"apiKey":"sk-ant-api03-keep1"}`), 0o600)
	_ = os.WriteFile(filepath.Join(acct, "high", "h2.json"), []byte(`{"apiKey":"sk-ant-api03-keep2"}`), 0o600)
	storeFile := filepath.Join(data, "data", "store.snapshot")
	env := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "ACCOUNT_DIR": acct, "PRODUCT_DIR": prod, "STORE_FILE": storeFile,
		"UPSTREAM_URL": fake.URL(), "ADMIN_TOKEN": "op-token-0123456789", "ALERT_WEBHOOK_URL": hook.URL,
	}
	serve := func() (cli func(args ...string) string, stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() { done <- cmdServe(ctx, envOf(env), io.Discard, ready) }()
		env["CLAUDE_ROUTE_URL"] = "http://" + <-ready
		cli = func(args ...string) string {
			var out bytes.Buffer
			if code := run(ctx, args, envOf(env), &out, &out); code != 0 {
				t.Fatalf("%v: exit %d %s", args, code, out.String())
			}
			return out.String()
		}
		return cli, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	}

	cli, stop := serve()
	key := strings.SplitN(cli("key", "issue", "--tier", "high", "--account", "h1"), "\n", 2)[0]
	req, _ := http.NewRequest(http.MethodPost, env["CLAUDE_ROUTE_URL"]+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("message: %v %v", resp, err)
	}
	resp.Body.Close()
	cli("blacklist", "h2", "--reason", "kept-across-restart")
	cli("alerts", "test")
	before := cli("key", "show", key, "--json")
	stop() // SIGTERM: the usage totals are flushed, then the store is written

	if _, err := os.Stat(storeFile); err != nil {
		t.Fatalf("no STORE_FILE after a stop: %v", err)
	}
	cli, stop = serve()
	defer stop()
	if after := cli("key", "show", key, "--json"); !strings.Contains(after, `"requests": 1`) || !strings.Contains(before, `"requests": 1`) {
		t.Fatalf("usage after the restart:\n%s\nbefore:\n%s", after, before)
	}
	if out := cli("pool", "--tier", "high"); !strings.Contains(out, "kept-across-restart") {
		t.Fatalf("blacklist lost in the restart:\n%s", out)
	}
	if out := cli("alerts", "--json"); !strings.Contains(out, "test alert") {
		t.Fatalf("alerts lost in the restart:\n%s", out)
	}
}
