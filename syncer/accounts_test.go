package syncer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/accounts"
)

// TestSyncAccounts covers how the pool follows the account folder: each
// case prepares files and Redis, syncs, changes the folder, syncs again
// and checks what the second sync did.
func TestSyncAccounts(t *testing.T) {
	exp1, exp2, exp3 := t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	type state struct{ hash string } // carried from prepare to check
	cases := []struct {
		name    string
		prepare func(e *env) state
		change  func(e *env, st state)
		check   func(t *testing.T, e *env, st state, rep Report)
	}{{
		name:    "new files of both shapes join the pool",
		prepare: func(e *env) state { return state{} },
		change: func(e *env, _ state) {
			e.oauthFile("high", "acct-o", "sk-ant-oat01-A1", "sk-ant-ort01-R1", exp1)
			e.apiKeyFile("supreme", "acct-k", "sk-ant-api03-K1")
		},
		check: func(t *testing.T, e *env, _ state, rep Report) {
			if !slices.Equal(rep.Added, []string{"acct-k", "acct-o"}) || len(rep.Updated)+len(rep.Removed) != 0 {
				t.Fatalf("report %s", rep)
			}
			o := mustGet(t, e, "acct-o")
			if o.Kind != accounts.OAuth || o.AccessToken != "sk-ant-oat01-A1" || !o.ExpiresAt.Equal(exp1) || o.Tier != "high" {
				t.Fatalf("oauth account in Redis: %v", o)
			}
			if k := mustGet(t, e, "acct-k"); k.APIKey != "sk-ant-api03-K1" || len(k.BaseURLs) != 1 {
				t.Fatalf("api-key account in Redis: %v", k)
			}
			if !slices.Equal(e.members("high"), []string{"acct-o"}) || !slices.Equal(e.members("supreme"), []string{"acct-k"}) {
				t.Fatalf("tiers: high %v supreme %v", e.members("high"), e.members("supreme"))
			}
		},
	}, {
		name: "unchanged files change nothing",
		prepare: func(e *env) state {
			e.oauthFile("high", "acct-o", "sk-ant-oat01-A1", "sk-ant-ort01-R1", exp1)
			e.apiKeyFile("high", "acct-k", "sk-ant-api03-K1")
			return state{}
		},
		change: func(e *env, _ state) {},
		check: func(t *testing.T, e *env, _ state, rep Report) {
			if len(rep.Added)+len(rep.Updated)+len(rep.Removed)+len(rep.Skipped) != 0 {
				t.Fatalf("report %s", rep)
			}
		},
	}, {
		name: "an edited API key is what the store returns",
		prepare: func(e *env) state {
			e.apiKeyFile("high", "acct-k", "sk-ant-api03-K1")
			return state{}
		},
		change: func(e *env, _ state) { e.apiKeyFile("high", "acct-k", "sk-ant-api03-K2") },
		check: func(t *testing.T, e *env, _ state, rep Report) {
			if !slices.Equal(rep.Updated, []string{"acct-k"}) {
				t.Fatalf("report %s", rep)
			}
			if k := mustGet(t, e, "acct-k"); k.APIKey != "sk-ant-api03-K2" {
				t.Fatal("the store still returns the old API key")
			}
		},
	}, {
		name: "an edited OAuth token with a later expiry is what the store returns",
		prepare: func(e *env) state {
			e.oauthFile("high", "acct-o", "sk-ant-oat01-A1", "sk-ant-ort01-R1", exp1)
			return state{}
		},
		change: func(e *env, _ state) { e.oauthFile("high", "acct-o", "sk-ant-oat01-A2", "sk-ant-ort01-R2", exp2) },
		check: func(t *testing.T, e *env, _ state, rep Report) {
			if !slices.Equal(rep.Updated, []string{"acct-o"}) {
				t.Fatalf("report %s", rep)
			}
			if o := mustGet(t, e, "acct-o"); o.AccessToken != "sk-ant-oat01-A2" || o.RefreshToken != "sk-ant-ort01-R2" {
				t.Fatal("the store still returns the old token")
			}
		},
	}, {
		name: "a refresh newer than the file survives the sync and is no update",
		prepare: func(e *env) state {
			e.oauthFile("high", "acct-o", "sk-ant-oat01-A1", "sk-ant-ort01-R1", exp1)
			return state{}
		},
		change: func(e *env, _ state) {
			// Another replica refreshed (Redis first); the file on this
			// host is still the copy it refreshed from (one refresh behind).
			if ok, err := e.accounts.SwapCredentials(e.ctx, "acct-o", "sk-ant-ort01-R1", "sk-ant-oat01-NEW", "sk-ant-ort01-NEW", exp3); !ok || err != nil {
				e.t.Fatalf("swap: %v %v", ok, err)
			}
		},
		check: func(t *testing.T, e *env, _ state, rep Report) {
			if len(rep.Updated) != 0 {
				t.Fatalf("report %s", rep)
			}
			if o := mustGet(t, e, "acct-o"); o.AccessToken != "sk-ant-oat01-NEW" || !o.ExpiresAt.Equal(exp3) {
				t.Fatal("sync moved the credentials backwards")
			}
		},
	}, {
		name: "a deleted file takes all the account's Redis state with it",
		prepare: func(e *env) state {
			e.apiKeyFile("high", "acct-a", "sk-ant-api03-A")
			e.sync()
			k := e.issue("high", true) // binds to acct-a, the only account
			e.apiKeyFile("high", "acct-b", "sk-ant-api03-B")
			if err := e.pool.Blacklist(e.ctx, "acct-a", "test"); err != nil {
				e.t.Fatal(err)
			}
			if err := e.pool.Limit(e.ctx, "acct-a", t0.Add(time.Hour)); err != nil {
				e.t.Fatal(err)
			}
			return state{hash: k.Hash}
		},
		change: func(e *env, _ state) { e.remove("high", "acct-a") },
		check: func(t *testing.T, e *env, st state, rep Report) {
			if !slices.Equal(rep.Removed, []string{"acct-a"}) || rep.BindingsMoved != 1 {
				t.Fatalf("report %s", rep)
			}
			if _, err := e.accounts.Get(e.ctx, "acct-a"); !errors.Is(err, accounts.ErrNotFound) {
				t.Fatalf("credentials still in Redis: %v", err)
			}
			if b := e.bound(st.hash); b != "" {
				t.Fatalf("key still bound to %q", b)
			}
			for _, h := range []string{"cr:{pool}:bl", "cr:{pool}:limited", "cr:{pool}:used"} {
				if ok, _ := e.rdb.HExists(e.ctx, h, "acct-a").Result(); ok {
					t.Errorf("%s still holds the account", h)
				}
			}
			if !slices.Equal(e.members("high"), []string{"acct-b"}) {
				t.Fatalf("tier high: %v", e.members("high"))
			}
			// The key rebinds on its next request.
			if b, err := e.pool.Bind(e.ctx, st.hash, "high", 3); err != nil || b.Account != "acct-b" {
				t.Fatalf("rebind: %v %v", b, err)
			}
		},
	}, {
		name: "a file moved to another tier's folder changes tier and frees its old keys",
		prepare: func(e *env) state {
			e.apiKeyFile("high", "acct-a", "sk-ant-api03-A")
			e.sync()
			return state{hash: e.issue("high", true).Hash}
		},
		change: func(e *env, _ state) {
			e.remove("high", "acct-a")
			e.apiKeyFile("supreme", "acct-a", "sk-ant-api03-A")
		},
		check: func(t *testing.T, e *env, st state, rep Report) {
			if !slices.Equal(rep.Updated, []string{"acct-a"}) || len(rep.Removed) != 0 || rep.BindingsMoved != 1 {
				t.Fatalf("report %s", rep)
			}
			if a := mustGet(t, e, "acct-a"); a.Tier != "supreme" {
				t.Fatalf("tier in Redis: %s", a.Tier)
			}
			if len(e.members("high")) != 0 || !slices.Equal(e.members("supreme"), []string{"acct-a"}) {
				t.Fatalf("tiers: high %v supreme %v", e.members("high"), e.members("supreme"))
			}
			if b := e.bound(st.hash); b != "" {
				t.Fatalf("high key still bound to the now-supreme account")
			}
			if u := e.used()["acct-a"]; u != "" {
				t.Fatalf("the supreme account still counts the high key's slot: %s", u)
			}
		},
	}, {
		name: "a broken file is skipped and its account keeps serving",
		prepare: func(e *env) state {
			e.oauthFile("high", "acct-o", "sk-ant-oat01-A1", "sk-ant-ort01-R1", exp1)
			e.sync()
			return state{hash: e.issue("high", true).Hash}
		},
		change: func(e *env, _ state) {
			// An editor's half-written save, secret included.
			p := filepath.Join(e.acctDir, "high", "acct-o.json")
			if err := os.WriteFile(p, []byte(`{"claudeAiOauth":{"accessToken":"sk-ant-oat01-HALF`), 0o600); err != nil {
				e.t.Fatal(err)
			}
		},
		check: func(t *testing.T, e *env, st state, rep Report) {
			if len(rep.Skipped) != 1 || len(rep.Removed) != 0 {
				t.Fatalf("report %s %s", rep, fmtList(rep.Skipped))
			}
			if !strings.Contains(rep.Skipped[0], "acct-o.json") || strings.Contains(rep.Skipped[0], "HALF") {
				t.Fatalf("skipped entry: %q", rep.Skipped[0])
			}
			if o := mustGet(t, e, "acct-o"); o.AccessToken != "sk-ant-oat01-A1" {
				t.Fatal("credentials lost")
			}
			if e.bound(st.hash) != "acct-o" {
				t.Fatal("binding lost")
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			backends(t, func(t *testing.T, e *env) {
				st := c.prepare(e)
				e.sync()
				c.change(e, st)
				c.check(t, e, st, e.sync())
			})
		})
	}
}

func mustGet(t *testing.T, e *env, name string) accounts.Account {
	t.Helper()
	a, err := e.accounts.Get(e.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A missing folder (an unmounted volume) must not read as "every account
// was deleted".
func TestMissingAccountDirRemovesNothing(t *testing.T) {
	e := mini(t)
	e.apiKeyFile("high", "acct-a", "sk-ant-api03-A")
	e.sync()
	if err := os.RemoveAll(e.acctDir); err != nil {
		t.Fatal(err)
	}
	rep, err := e.s.Sync(e.ctx)
	if !errors.Is(err, ErrNoAccountDir) {
		t.Fatalf("err = %v", err)
	}
	if len(rep.Removed) != 0 || rep.Error == "" {
		t.Fatalf("report %s", rep)
	}
	mustGet(t, e, "acct-a")
	if last, err := e.s.Last(e.ctx); err != nil || last == nil || last.Error == "" {
		t.Fatalf("status must show the failed sync: %v %v", last, err)
	}
}
