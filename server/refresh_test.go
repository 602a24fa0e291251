package server

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/accounts"
)

func (e *env) accountFile(tier, name string) accounts.Account {
	e.t.Helper()
	p := filepath.Join(e.acctDir, tier, name+".json")
	b, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := accounts.Parse(b)
	if err != nil {
		e.t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		e.t.Fatalf("account file mode %v, want 0600", st.Mode().Perm())
	}
	return a
}

// Three instances, one account expiring in 30 s: exactly one token call,
// the file holds the new tokens, every instance uses the new access token.
func TestRefreshBeforeExpiryExactlyOnceAcrossInstances(t *testing.T) {
	e := newEnv(t, withLead(28*time.Second))
	old, _ := e.oauthAccount("high", "o1", time.Now().Add(30*time.Second))
	us := []string{e.start(), e.start(), e.start()}
	key := e.issue("high")
	deadline := time.Now().Add(20 * time.Second)
	for e.fake.TokenCalls() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// The signal that no second call can come: every instance's timer for
	// o1 now plans for the new token's expiry, i.e. each has seen it.
	until(t, "every instance planned for the new token", func() bool {
		for _, a := range e.apps {
			if exp, ok := a.Refresher.Planned("o1"); !ok || !exp.After(time.Now().Add(time.Hour)) {
				return false
			}
		}
		return true
	})
	if n := e.fake.TokenCalls(); n != 1 {
		t.Fatalf("token calls: %d, want exactly 1", n)
	}
	// The write-back follows the swap in Redis.
	until(t, "the file holds the new tokens", func() bool { return e.accountFile("high", "o1").AccessToken != old })
	f := e.accountFile("high", "o1")
	if f.AccessToken == old || !e.fake.AccessValid(f.AccessToken) || !f.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Fatalf("the file does not hold the new tokens")
	}
	for _, u := range us {
		if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 || e.lastCredential() != f.AccessToken {
			t.Fatalf("%s: %d, not using the new token", u, r.status)
		}
	}
	var st struct {
		Accounts []struct {
			Name        string
			NextRefresh *time.Time `json:"next_refresh"`
			ExpiresAt   *time.Time `json:"expires_at"`
		}
	}
	e.admin(http.MethodGet, "/admin/api/status", nil, &st)
	if len(st.Accounts) != 1 || st.Accounts[0].NextRefresh == nil || !st.Accounts[0].NextRefresh.Before(*st.Accounts[0].ExpiresAt) {
		t.Fatalf("status must show the next refresh before expiry: %+v", st.Accounts)
	}
}

func TestExpiredTokenIsRefreshedNotBlacklisted(t *testing.T) {
	e := newEnv(t)
	// Already expired by its file: refreshed before the request goes out.
	old1, _ := e.oauthAccount("high", "o1", time.Now().Add(-time.Minute))
	url := e.start()
	key := e.issue("high", "o1")
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("expired token: %d %s", r.status, r.body)
	}
	if e.lastCredential() == old1 {
		t.Fatal("sent a dead token")
	}
	// Valid by its expiry but refused upstream as expired: refresh and retry.
	cur := e.lastCredential()
	e.fake.ExpireAccess(cur)
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("401 token expired must refresh and retry: %d %s", r.status, r.body)
	}
	if e.lastCredential() == cur {
		t.Fatal("retried with the expired token")
	}
	acc := e.accountViews()
	if acc[0].Blacklist != nil {
		t.Fatalf("an expired token must not blacklist: %+v", acc[0].Blacklist)
	}
	if !strings.Contains(e.logs.String(), "global refresh lock set") {
		t.Error("missing the refresh success log line")
	}
}

func TestDeadRefreshTokenBlacklistsAndMovesTheKey(t *testing.T) {
	e := newEnv(t)
	// a0 sorts first, so a fresh key binds to it unless the refresher has
	// already found its refresh token dead; either way the customer must be
	// served by a2 and a0 must end up blacklisted.
	e.writeAccount("high", "a0", map[string]any{"claudeAiOauth": map[string]any{
		"accessToken": "sk-ant-oat01-unknown", "refreshToken": "sk-ant-ort01-unknown", "expiresAt": time.Now().Add(-time.Minute).UnixMilli()}})
	k2 := e.apiAccount("high", "a2")
	url := e.start()
	key := e.issue("high")
	r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != 200 || e.lastCredential() != k2 {
		t.Fatalf("the key must move to a2: %d %s", r.status, r.body)
	}
	acc := e.accountViews()
	for _, a := range acc {
		if a.Name == "a0" && (a.Blacklist == nil || !strings.Contains(a.Blacklist.Reason, "invalid_grant")) {
			b, _ := json.Marshal(a)
			t.Fatalf("a0 must be blacklisted for invalid_grant: %s", b)
		}
	}
}
