package server

import (
	"net/http"
	"net/url"
	"testing"
)

type keyPage struct {
	Keys       []KeyView `json:"keys"`
	NextCursor *string   `json:"next_cursor"`
}

func (e *env) keyPage(q url.Values) (keyPage, int) {
	e.t.Helper()
	var p keyPage
	st := e.admin(http.MethodGet, "/admin/api/keys?"+q.Encode(), nil, &p)
	return p, st
}

// Issue 27: the keys list pages (limit, cursor, next_cursor) and filters
// by tier, status, account and a search, so an operator with 100,000 keys
// is never sent all of them at once.
func TestKeyListPages(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "a1")
	e.start()
	var batch struct{ Keys []IssuedKey }
	if st := e.admin(http.MethodPost, "/admin/api/keys/batch", map[string]any{"tier": "medium", "count": 250, "note": "bulk"}, &batch); st != http.StatusCreated || len(batch.Keys) != 250 {
		t.Fatalf("batch: %d, %d keys", st, len(batch.Keys))
	}
	acme := e.issue("high", "a1")
	e.admin(http.MethodPost, "/admin/api/keys/"+keyIDOf(acme)+"/note", map[string]string{"note": "ACME corp"}, nil)
	gone := e.issue("high")
	e.admin(http.MethodDelete, "/admin/api/keys/"+keyIDOf(gone), nil, nil)

	// Every key once, in creation order, 100 at a time by default.
	seen := map[string]bool{}
	var order []KeyView
	q := url.Values{}
	for pages := 0; ; pages++ {
		p, st := e.keyPage(q)
		if st != http.StatusOK {
			t.Fatalf("page %d: %d", pages, st)
		}
		if p.NextCursor != nil && len(p.Keys) != 100 {
			t.Fatalf("page %d has %d keys and a next page; want the default 100", pages, len(p.Keys))
		}
		for _, k := range p.Keys {
			if seen[k.ID] {
				t.Fatalf("key %s listed twice", k.ID)
			}
			seen[k.ID] = true
			order = append(order, k)
		}
		if p.NextCursor == nil {
			break
		}
		q.Set("cursor", *p.NextCursor)
	}
	if len(seen) != 252 {
		t.Fatalf("listed %d keys, want 252", len(seen))
	}
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if b.CreatedAt.Before(a.CreatedAt) || b.CreatedAt.Equal(a.CreatedAt) && b.ID < a.ID {
			t.Fatalf("keys out of order at %d: %s then %s", i, a.ID, b.ID)
		}
	}

	for _, c := range []struct {
		name  string
		query url.Values
		want  []string // ids, in order; nil: only the count matters
		count int
	}{
		{"tier", url.Values{"tier": {"high"}}, []string{keyIDOf(acme), keyIDOf(gone)}, 2},
		{"status", url.Values{"status": {"revoked"}}, []string{keyIDOf(gone)}, 1},
		{"account", url.Values{"account": {"a1"}}, []string{keyIDOf(acme)}, 1},
		{"search on the note, any case", url.Values{"q": {"acme"}}, []string{keyIDOf(acme)}, 1},
		{"search on the id", url.Values{"q": {keyIDOf(gone)[2:10]}}, []string{keyIDOf(gone)}, 1},
		{"limit", url.Values{"limit": {"1000"}, "tier": {"medium"}}, nil, 250},
		{"small limit", url.Values{"limit": {"7"}}, nil, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, st := e.keyPage(c.query)
			if st != http.StatusOK || len(p.Keys) != c.count {
				t.Fatalf("%d, %d keys; want %d", st, len(p.Keys), c.count)
			}
			for i, id := range c.want {
				if p.Keys[i].ID != id {
					t.Fatalf("key %d = %s, want %s", i, p.Keys[i].ID, id)
				}
			}
			if (p.NextCursor != nil) != (c.name == "small limit") {
				t.Fatalf("next_cursor = %v", p.NextCursor)
			}
		})
	}
	for _, bad := range []url.Values{{"limit": {"1001"}}, {"limit": {"0"}}, {"cursor": {"not-a-cursor"}}, {"status": {"sleeping"}}} {
		if _, st := e.keyPage(bad); st != http.StatusBadRequest {
			t.Fatalf("%v: %d, want 400", bad, st)
		}
	}
}
