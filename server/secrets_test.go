package server

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/store"
)

// TestNoSecretLeaks runs a full session — requests, errors, a refresh, a
// blacklisting, every admin view, metrics, the dashboard — and then looks
// for any upstream token or client key in everything the proxy wrote:
// logs, responses, the store and the ledger.
func TestNoSecretLeaks(t *testing.T) {
	e := newEnv(t)
	access, refresh := e.oauthAccount("high", "o1", time.Now().Add(-time.Minute))
	apiKey := e.apiAccount("high", "a2")
	url := e.start()
	var seen strings.Builder
	record := func(r reply) {
		for k, vv := range r.header {
			seen.WriteString(k + ": " + strings.Join(vv, ",") + "\n")
		}
		seen.Write(r.body)
	}
	key := e.issue("high", "o1")
	record(post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)))
	record(post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true)))
	record(post(t, url, "/v1/messages/count_tokens", key, msgBody("claude-sonnet-4-5", false)))
	record(post(t, url, "/v1/messages", key, `{"broken`))
	record(post(t, url, "/v1/messages", "sk-cli-v1-"+strings.Repeat("z", 32), msgBody("claude-sonnet-4-5", false)))
	// The upstream rejects the (refreshed) OAuth token with a message that
	// names it: the blacklist reason and logs must not repeat it.
	cur := e.lastCredential()
	e.fake.InjectFault(cur, fakeupstream.Fault{Status: 401, ErrorType: "authentication_error", Message: "Invalid bearer token"})
	record(post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)))
	e.srvs[0].waitBackground()
	for _, p := range []string{"/admin/api/pool", "/admin/api/accounts", "/admin/api/status", "/admin/api/keys", "/admin/api/usage", "/admin/api/keys/" + keyIDOf(key)} {
		req, _ := http.NewRequest(http.MethodGet, url+p, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.Write(b)
	}
	for _, p := range []string{"/metrics", "/admin/", "/health"} {
		req, _ := http.NewRequest(http.MethodGet, url+p, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken) // /metrics takes it
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.Write(b)
	}
	newAccess := e.accountFile("high", "o1").AccessToken
	newRefresh := e.accountFile("high", "o1").RefreshToken
	secrets := map[string]string{
		"old access": access, "old refresh": refresh, "new access": newAccess, "new refresh": newRefresh,
		"api key": apiKey, "client key": key,
	}
	if newAccess == access {
		t.Fatal("the session should have refreshed the token")
	}
	logs := e.logs.String()
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("%s appears in the logs", what)
		}
		if strings.Contains(seen.String(), s) {
			t.Errorf("%s appears in a response", what)
		}
	}
	// The store holds client keys only as hashes.
	o, _ := store.ParseURL(e.redisURL)
	_ = o
	rdb := e.rdb()
	ctx := context.Background()
	ks, err := store.ScanKeys(ctx, rdb, "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		if strings.Contains(k, key) {
			t.Fatalf("client key in a Redis key name")
		}
		typ, _ := rdb.Type(ctx, k).Result()
		var vals []string
		switch typ {
		case "hash":
			m, _ := rdb.HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "string":
			v, _ := rdb.Get(ctx, k).Result()
			vals = append(vals, v)
		case "set":
			vals, _ = rdb.SMembers(ctx, k).Result()
		case "zset":
			vals, _ = rdb.ZRange(ctx, k, 0, -1).Result()
		}
		for _, v := range vals {
			if strings.Contains(v, key) {
				t.Fatalf("client key stored in %s", k)
			}
		}
	}
	// The ledger neither.
	_ = filepath.WalkDir(e.prodDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), key) {
				t.Fatalf("client key in the ledger %s", p)
			}
		}
		return nil
	})
}
