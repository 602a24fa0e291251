package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/tiers"
)

// Keys sold from stock start their validity at their first successful
// request: until then they show "not activated" with no expiry, across a
// flush and sync too; the first use sets expires_at = first use + the
// tier's validity, which a later request, a failed request, and another
// flush and sync leave as it is.
func TestFirstUseKeysAcrossFlushAndSync(t *testing.T) {
	e := newEnv(t)
	medium, _ := e.tiers.Get("medium")
	medium.ValidityFrom = tiers.ValidityFromFirstUse
	e.apiAccount("trial", "t1")
	e.apiAccount("medium", "m1")
	url := e.start()

	var batch struct {
		Keys []IssuedKey `json:"keys"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys/batch", map[string]any{"tier": "trial", "count": 2, "from_first_use": true}, &batch); st != http.StatusCreated || len(batch.Keys) != 2 {
		t.Fatalf("batch issue: %d %+v", st, batch)
	}
	used, shelf := batch.Keys[0], batch.Keys[1]
	var one struct {
		Key    string  `json:"key"`
		Record KeyView `json:"record"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys", map[string]any{"tier": "medium"}, &one); st != http.StatusCreated {
		t.Fatalf("issue: %d", st)
	}
	plain := e.issue("trial") // validity from issue, as before
	for _, k := range []KeyView{used.KeyView, shelf.KeyView, one.Record} {
		if !k.NotActivated || k.ExpiresAt != nil {
			t.Fatalf("issued %+v, want not activated without an expiry", k)
		}
	}
	if one.Record.FirstUseValiditySeconds != 30*24*3600 || used.FirstUseValiditySeconds != 24*3600 {
		t.Fatalf("validity to start: %d, %d", one.Record.FirstUseValiditySeconds, used.FirstUseValiditySeconds)
	}
	show := func(id string) KeyView {
		t.Helper()
		var out struct {
			Key KeyView `json:"key"`
		}
		if st := e.admin(http.MethodGet, "/admin/api/keys/"+id, nil, &out); st != 200 {
			t.Fatalf("key show %s: %d", id, st)
		}
		return out.Key
	}
	if k := show(keyIDOf(plain)); k.NotActivated || k.ExpiresAt == nil {
		t.Fatalf("a key of a tier without validity_from is activated at issue: %+v", k)
	}

	flushSync := func() {
		t.Helper()
		e.ledgerFlush()
		testenv.Flush(t, e.rdb())
		e.sync()
	}
	flushSync()
	if k := show(used.ID); !k.NotActivated || k.ExpiresAt != nil {
		t.Fatalf("after flush and sync, before use: %+v", k)
	}

	// A refused request does not activate the key; a successful one does.
	if r := post(t, url, "/v1/messages", used.Key, `{"model":"claude-sonnet-4-5","messages":[]}`); r.status != http.StatusBadRequest {
		t.Fatalf("bad request: %d %s", r.status, r.body)
	}
	e.srvs[0].waitBackground()
	if k := show(used.ID); !k.NotActivated {
		t.Fatalf("a failed request activated the key: %+v", k)
	}
	first := time.Now()
	if r := post(t, url, "/v1/messages", used.Key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("first use: %d %s", r.status, r.body)
	}
	e.srvs[0].waitBackground()
	k := show(used.ID)
	if k.NotActivated || k.ExpiresAt == nil || k.ExpiresAt.Before(first.Add(24*time.Hour-time.Second)) || k.ExpiresAt.After(time.Now().Add(24*time.Hour)) {
		t.Fatalf("after the first use: %+v, want expiry first use + 24h", k)
	}
	exp := *k.ExpiresAt
	if r := post(t, url, "/v1/messages", used.Key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("second use: %d", r.status)
	}
	e.srvs[0].waitBackground()
	var cu struct {
		Activated bool    `json:"activated"`
		ExpiresAt *string `json:"expires_at"`
	}
	if customerJSON(t, url, used.Key, &cu); !cu.Activated || cu.ExpiresAt == nil || *cu.ExpiresAt != exp.UTC().Format(time.RFC3339) {
		t.Fatalf("/v1/usage after use: %+v, want activated, expires %v", cu, exp)
	}
	if customerJSON(t, url, shelf.Key, &cu); cu.Activated || cu.ExpiresAt != nil {
		t.Fatalf("/v1/usage of the key on the shelf: %+v", cu)
	}

	flushSync()
	if k := show(used.ID); k.NotActivated || k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) {
		t.Fatalf("after flush and sync: %+v, want expiry %v kept", k, exp)
	}
	if k := show(shelf.ID); !k.NotActivated {
		t.Fatalf("the unused key after flush and sync: %+v", k)
	}
}

// customerJSON reads GET /v1/usage with key into out.
func customerJSON(t *testing.T, url, key string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/usage", nil)
	req.Header.Set("X-Api-Key", key)
	getJSON(t, req, out)
}
