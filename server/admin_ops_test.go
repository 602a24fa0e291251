package server

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
)

// keyView reads a key through the admin API.
func (e *env) keyView(ref string) KeyView {
	e.t.Helper()
	var out struct{ Key KeyView }
	if st := e.admin(http.MethodGet, "/admin/api/keys/"+ref, nil, &out); st != http.StatusOK {
		e.t.Fatalf("show %s: %d", ref, st)
	}
	return out.Key
}

func (e *env) slotsUsed(account string) int {
	for _, a := range e.accountViews() {
		if a.Name == account {
			return a.SlotsUsed
		}
	}
	return -1
}

// TestKeyLifecycleAdminAPI extends, notes, moves and rebinds keys over the
// admin API, refuses a move into a full tier with nothing changed, and
// checks that a flush and a sync keep every change.
func TestKeyLifecycleAdminAPI(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	e.apiAccount("trial", "t2")
	e.apiAccount("supreme", "s1") // 2 slots
	url := e.start()

	key := e.issue("trial", "t1")
	id := keyIDOf(key)
	before := e.keyView(id)

	// extend by days, from the current expiry
	var got struct{ Key KeyView }
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/extend", map[string]any{"days": 10}, &got); st != 200 {
		t.Fatalf("extend: %d", st)
	}
	if want := before.ExpiresAt.Add(10 * 24 * time.Hour); !got.Key.ExpiresAt.Equal(want) {
		t.Fatalf("extended to %v, want %v", got.Key.ExpiresAt, want)
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/extend", map[string]any{"until": "yesterday"}, nil); st != 400 {
		t.Fatalf("bad date: %d, want 400", st)
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/note", map[string]any{"note": "acme corp"}, nil); st != 200 {
		t.Fatalf("note: %d", st)
	}
	// rebind to t2: t1's slot is freed, t2's taken
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/rebind", map[string]any{"account": "t2"}, nil); st != 200 {
		t.Fatalf("rebind: %d", st)
	}
	if e.slotsUsed("t1") != 0 || e.slotsUsed("t2") != 1 {
		t.Fatalf("after rebind: t1 %d t2 %d, want 0 and 1", e.slotsUsed("t1"), e.slotsUsed("t2"))
	}
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("request before the move: %d", r.status)
	}

	// Fill supreme, then try to move: refused, nothing changed.
	e.issue("supreme", "s1")
	e.issue("supreme", "s1")
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/move", map[string]any{"tier": "supreme"}, nil); st != http.StatusConflict {
		t.Fatalf("move into a full tier: %d, want 409", st)
	}
	if v := e.keyView(id); v.Tier != "trial" || v.Account != "t2" || e.slotsUsed("t2") != 1 {
		t.Fatalf("after a refused move: %+v, t2 slots %d", v, e.slotsUsed("t2"))
	}
	// Free one supreme slot and move: the trial slot is freed, a supreme one taken.
	var list struct{ Keys []KeyView }
	e.admin(http.MethodGet, "/admin/api/keys?tier=supreme", nil, &list)
	e.admin(http.MethodDelete, "/admin/api/keys/"+list.Keys[0].ID, nil, nil)
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/move", map[string]any{"tier": "supreme"}, &got); st != 200 {
		t.Fatalf("move: %d", st)
	}
	if got.Key.Tier != "supreme" || got.Key.Account != "s1" || e.slotsUsed("t2") != 0 || e.slotsUsed("s1") != 2 {
		t.Fatalf("after the move: %+v, t2 %d s1 %d", got.Key, e.slotsUsed("t2"), e.slotsUsed("s1"))
	}
	// Same raw key, new tier's rules: supreme may use opus.
	if r := post(t, url, "/v1/messages", key, msgBody("claude-opus-4-1", false)); r.status != 200 {
		t.Fatalf("moved key on opus: %d %s", r.status, r.body)
	}
	want := e.keyView(id)

	// A flush and a sync keep every change.
	e.srvs[0].waitBackground()
	e.ledgerFlush() // bindings reach the ledger with the writer's next batch
	testenv.Flush(t, e.rdb())
	e.sync()
	after := e.keyView(id)
	if after.Tier != "supreme" || after.Note != "acme corp" || !after.ExpiresAt.Equal(*want.ExpiresAt) || after.Account != "s1" {
		t.Fatalf("after flush+sync: %+v, want %+v", after, want)
	}

	// renew: supreme keys never expire, trial ones get a day from now.
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/renew", nil, nil); st != 400 {
		t.Fatalf("renew a key without validity: %d, want 400", st)
	}
	tk := keyIDOf(e.issue("trial"))
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+tk+"/renew", nil, &got); st != 200 || got.Key.ExpiresAt == nil {
		t.Fatalf("renew: %d %+v", st, got.Key)
	}

	// batch
	var batch struct{ Keys []IssuedKey }
	if st := e.admin(http.MethodPost, "/admin/api/keys/batch", map[string]any{"tier": "medium", "count": 3, "note": "batch"}, &batch); st != 201 || len(batch.Keys) != 3 {
		t.Fatalf("batch: %d, %d keys", st, len(batch.Keys))
	}
	for _, k := range batch.Keys {
		if !strings.HasPrefix(k.Key, "sk-cli-v1-") || k.Tier != "medium" || k.Note != "batch" {
			t.Fatalf("batch key %+v", k)
		}
	}
}

// TestAccountVerbsAdminAPI adds, disables, enables, replaces, refreshes and
// deletes accounts over the admin API; secrets never come back; a disabled
// account stays disabled across a flush and a sync.
func TestAccountVerbsAdminAPI(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	e.start()
	secret := "sk-ant-api03-new-account-secret"
	e.fake.AddAPIKey(secret)

	raw := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, e.urls[0]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	st, body := raw(http.MethodPost, "/admin/api/accounts?tier=trial&name=t2", `{"apiKey":"`+secret+`"}`)
	if st != 201 || strings.Contains(body, secret) || !strings.Contains(body, `"fingerprint":"sha256:`) {
		t.Fatalf("add: %d %s", st, body)
	}
	p := filepath.Join(e.acctDir, "trial", "t2.json")
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	if st, _ := raw(http.MethodPost, "/admin/api/accounts?tier=high&name=t2", `{"apiKey":"x"}`); st != http.StatusConflict {
		t.Fatalf("duplicate name across tiers: %d, want 409", st)
	}
	if st, body := raw(http.MethodPost, "/admin/api/accounts?tier=trial&name=t3", `{"apiKey": "sk-secret-broken`); st != 400 || strings.Contains(body, "sk-secret") {
		t.Fatalf("broken JSON: %d %s", st, body)
	}
	if !hasAccount(e.accountViews(), "t2") {
		t.Fatal("added account not in the pool")
	}

	// Disable: blacklisted with reason "disabled"; the key on it moves.
	key := e.issue("trial", "t2")
	if st, _ := raw(http.MethodPost, "/admin/api/accounts/t2/disable", ""); st != 200 {
		t.Fatalf("disable: %d", st)
	}
	if r := post(t, e.urls[0], "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 || e.lastCredential() == secret {
		t.Fatalf("key on a disabled account: %d, credential %q", r.status, e.lastCredential())
	}
	b, _ := os.ReadFile(p)
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	if doc["disabled"] != true {
		t.Fatalf("file after disable: %s", b)
	}
	testenv.Flush(t, e.rdb())
	e.sync()
	if v := accountByName(e.accountViews(), "t2"); v == nil || v.Blacklist == nil || v.Blacklist.Reason != "disabled" {
		t.Fatalf("after flush+sync the account is not disabled: %+v", v)
	}
	if st, _ := raw(http.MethodPost, "/admin/api/accounts/t2/enable", ""); st != 200 {
		t.Fatalf("enable: %d", st)
	}
	if v := accountByName(e.accountViews(), "t2"); v == nil || v.Blacklist != nil {
		t.Fatalf("after enable: %+v", v)
	}

	// Replace the credentials.
	secret2 := "sk-ant-api03-replaced-secret"
	e.fake.AddAPIKey(secret2)
	if st, body := raw(http.MethodPut, "/admin/api/accounts/t2/credentials", `{"apiKey":"`+secret2+`"}`); st != 200 || strings.Contains(body, secret2) {
		t.Fatalf("replace: %d %s", st, body)
	}
	if st, body := raw(http.MethodGet, "/admin/api/accounts/t2", ""); st != 200 || strings.Contains(body, "sk-ant") || !strings.Contains(body, `"kind":"apikey"`) {
		t.Fatalf("show: %d %s", st, body)
	}
	// Refresh: an API key has nothing to refresh.
	if st, _ := raw(http.MethodPost, "/admin/api/accounts/t2/refresh", ""); st != 400 {
		t.Fatalf("refresh an API key: %d, want 400", st)
	}

	// Delete: the file goes to the trash, the account leaves the pool.
	if st, _ := raw(http.MethodDelete, "/admin/api/accounts/t2", ""); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
	trashed, _ := filepath.Glob(filepath.Join(e.acctDir, ".trash", "trial", "t2.json.*"))
	if len(trashed) != 1 || hasAccount(e.accountViews(), "t2") {
		t.Fatalf("trash %v; account still listed: %v", trashed, hasAccount(e.accountViews(), "t2"))
	}
}

func TestRefreshAccountNow(t *testing.T) {
	e := newEnv(t)
	access, _ := e.oauthAccount("high", "h1", time.Now().Add(8*time.Hour))
	e.start()
	var out struct {
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/h1/refresh", nil, &out); st != 200 || out.ExpiresAt == nil {
		t.Fatalf("refresh: %d %+v", st, out)
	}
	a, err := e.apps[0].Accounts.Get(t.Context(), "h1")
	if err != nil || a.AccessToken == access {
		t.Fatalf("token not refreshed: %v", err)
	}
}

func hasAccount(vs []AccountView, name string) bool { return accountByName(vs, name) != nil }

func accountByName(vs []AccountView, name string) *AccountView {
	for i := range vs {
		if vs[i].Name == name {
			return &vs[i]
		}
	}
	return nil
}

// TestRecoverDisabledRefused: the admin API answers 409 with a message that
// names enable, and the account stays disabled.
func TestRecoverDisabledRefused(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	e.start()
	if st := e.admin(http.MethodPost, "/admin/api/accounts/t1/disable", nil, nil); st != 200 {
		t.Fatalf("disable: %d", st)
	}
	var out struct{ Error struct{ Message string } }
	if st := e.admin(http.MethodPost, "/admin/api/accounts/t1/recover", nil, &out); st != http.StatusConflict || !strings.Contains(out.Error.Message, "account enable t1") {
		t.Fatalf("recover a disabled account: %d %q, want 409 naming enable", st, out.Error.Message)
	}
	if v := accountByName(e.accountViews(), "t1"); v == nil || v.Blacklist == nil || v.Blacklist.Reason != "disabled" {
		t.Fatalf("after a refused recover: %+v", v)
	}
}
