package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

// SIGHUP re-reads TIERS_FILE (through a sync) in a running serve: the
// key's next request is held to the new quota, with no restart.
func TestSIGHUPReloadsTiers(t *testing.T) {
	redisURL := testenv.RedisURL(t, 8)
	fake := fakeupstream.Start(fakeupstream.Options{})
	defer fake.Close()
	fake.AddAPIKey("sk-ant-api03-hup")
	acct, prod := t.TempDir(), t.TempDir()
	_ = os.MkdirAll(filepath.Join(acct, "gold"), 0o700)
	_ = os.WriteFile(filepath.Join(acct, "gold", "g1.json"), []byte(`{"apiKey":"sk-ant-api03-hup"}`), 0o600)
	tiersFile := filepath.Join(t.TempDir(), "tiers.json")
	writeTiers := func(quota string) {
		if err := os.WriteFile(tiersFile, []byte(`{"tiers":[{"name":"gold","slots":2,"quotas":{"sonnet":`+quota+`}}]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeTiers("1")
	env := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "REDIS_URL": redisURL, "ACCOUNT_DIR": acct, "PRODUCT_DIR": prod,
		"UPSTREAM_URL": fake.URL(), "ADMIN_TOKEN": "op-token-0123456789", "TIERS_FILE": tiersFile,
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var logs testenv.Buffer
	go func() { done <- cmdServe(ctx, envOf(env), &logs, ready) }()
	addr := <-ready
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	env["CLAUDE_ROUTE_URL"] = "http://" + addr
	var out bytes.Buffer
	if code := run(ctx, []string{"key", "issue", "--tier", "gold"}, envOf(env), &out, io.Discard); code != 0 {
		t.Fatalf("issue: %d %s", code, out.String())
	}
	key := strings.SplitN(out.String(), "\n", 2)[0]
	ask := func() int {
		req, _ := http.NewRequest(http.MethodPost, env["CLAUDE_ROUTE_URL"]+"/v1/messages",
			strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if a, b := ask(), ask(); a != 200 || b != 429 {
		t.Fatalf("quota 1: %d then %d", a, b)
	}
	writeTiers("2")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for limit(t, env["CLAUDE_ROUTE_URL"], key) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not reload the tiers file:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := ask(); st != 200 {
		t.Fatalf("after SIGHUP: %d, want 200 (quota 2)", st)
	}
}

func limit(t *testing.T, base, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/usage", nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u struct {
		Families map[string]struct{ Limit int } `json:"families"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&u)
	return u.Families["sonnet"].Limit
}
