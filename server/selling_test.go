package server

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Selling within capacity: a key issued when the tier's unbound keys
// would outnumber its free slots, or when the tier is full, comes with a
// warning; strict refuses it and issues nothing; the pool shows sold keys
// against slots.
func TestSellingWithinCapacity(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1") // 7 slots
	url := e.start()
	type batchOut struct {
		Keys    []IssuedKey `json:"keys"`
		Warning string      `json:"warning"`
	}
	var b batchOut
	if st := e.admin(http.MethodPost, "/admin/api/keys/batch", map[string]any{"tier": "trial", "count": 7}, &b); st != http.StatusCreated || len(b.Keys) != 7 || b.Warning != "" {
		t.Fatalf("7 keys for 7 slots: %d, warning %q", st, b.Warning)
	}
	var one struct {
		Key     string `json:"key"`
		Warning string `json:"warning"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys", map[string]any{"tier": "trial"}, &one); st != http.StatusCreated ||
		!strings.Contains(one.Warning, "tier trial would have 8 keys not yet bound for 7 free slots") {
		t.Fatalf("the 8th key: %d, warning %q", st, one.Warning)
	}
	var refused struct {
		Error struct{ Message string } `json:"error"`
	}
	for _, path := range []string{"/admin/api/keys", "/admin/api/keys/batch"} {
		if st := e.admin(http.MethodPost, path, map[string]any{"tier": "trial", "count": 1, "strict": true}, &refused); st != http.StatusConflict ||
			!strings.Contains(refused.Error.Message, "not issued (strict): tier trial would have 9 keys") {
			t.Fatalf("%s strict: %d %q", path, st, refused.Error.Message)
		}
	}
	pool := func(tier string) PoolTier {
		t.Helper()
		var p struct {
			Tiers []PoolTier `json:"tiers"`
		}
		if st := e.admin(http.MethodGet, "/admin/api/pool?tier="+tier, nil, &p); st != 200 || len(p.Tiers) != 1 {
			t.Fatalf("pool: %d", st)
		}
		return p.Tiers[0]
	}
	if p := pool("trial"); p.SoldKeys != 8 || p.UnboundKeys != 8 || p.FreeSlots != 7 {
		t.Fatalf("pool after selling 8 (strict ones refused): %+v", p)
	}
	// A key in use takes its slot: one unbound key and one free slot less.
	if r := post(t, url, "/v1/messages", one.Key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if p := pool("trial"); p.SoldKeys != 8 || p.UnboundKeys != 7 || p.FreeSlots != 6 || p.SlotsUsed != 1 {
		t.Fatalf("pool after one first use: %+v", p)
	}
	// A tier without accounts is full: every key sold there warns.
	if st := e.admin(http.MethodPost, "/admin/api/keys", map[string]any{"tier": "medium"}, &one); st != http.StatusCreated ||
		!strings.Contains(one.Warning, "tier medium is full") {
		t.Fatalf("medium: %d, warning %q", st, one.Warning)
	}
}

// key renew never shortens an expiry unless forced, and never starts a
// not-activated key's validity unless forced.
func TestRenewNeverShortensWithoutForce(t *testing.T) {
	e := newEnv(t)
	e.start()
	id := keyIDOf(e.issue("trial")) // valid 1 day
	later := time.Now().Add(10 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/extend", map[string]any{"until": later}, nil); st != 200 {
		t.Fatalf("extend: %d", st)
	}
	var refused struct {
		Error struct{ Message string } `json:"error"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/renew", nil, &refused); st != http.StatusConflict || !strings.Contains(refused.Error.Message, "would shorten") {
		t.Fatalf("renew shortening: %d %q", st, refused.Error.Message)
	}
	var got struct {
		Key KeyView `json:"key"`
	}
	if st := e.admin(http.MethodGet, "/admin/api/keys/"+id, nil, &got); st != 200 || got.Key.ExpiresAt.Format(time.RFC3339) != later {
		t.Fatalf("expiry after a refused renew: %v", got.Key.ExpiresAt)
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/renew", map[string]any{"force": true}, &got); st != 200 || got.Key.ExpiresAt.After(time.Now().Add(25*time.Hour)) {
		t.Fatalf("forced renew: %d %v", st, got.Key.ExpiresAt)
	}
	var stock struct {
		Keys []IssuedKey `json:"keys"`
	}
	e.admin(http.MethodPost, "/admin/api/keys/batch", map[string]any{"tier": "trial", "count": 1, "from_first_use": true}, &stock)
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+stock.Keys[0].ID+"/renew", nil, &refused); st != http.StatusConflict || !strings.Contains(refused.Error.Message, "not activated") {
		t.Fatalf("renew of a key on the shelf: %d %q", st, refused.Error.Message)
	}
}
