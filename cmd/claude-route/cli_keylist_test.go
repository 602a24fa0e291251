package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
)

// key list reads the list a page at a time, passing each next_cursor on
// with the filters, until the last page or --limit.
func TestKeyListPagesThroughTheServer(t *testing.T) {
	const total = 2500
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		queries = append(queries, r.URL.RawQuery)
		start := 0
		if c := q.Get("cursor"); c != "" {
			fmt.Sscanf(c, "after-%d", &start)
		}
		limit := 100
		fmt.Sscanf(q.Get("limit"), "%d", &limit)
		var ks []map[string]any
		for i := start; i < min(start+limit, total); i++ {
			ks = append(ks, map[string]any{"id": fmt.Sprintf("k_%012d", i), "tier": q.Get("tier"), "status": "active", "created_at": "2026-12-01T00:00:00Z"})
		}
		var next any
		if start+limit < total {
			next = fmt.Sprintf("after-%d", start+limit)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": ks, "next_cursor": next})
	}))
	defer srv.Close()
	env := envOf(map[string]string{"CLAUDE_ROUTE_URL": srv.URL, "ADMIN_TOKEN": "t"})

	out := &testenv.Buffer{}
	if code := run(context.Background(), []string{"key", "list", "--tier", "high", "--search", "acme", "--json"}, env, out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var res struct{ Keys []map[string]any }
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil || len(res.Keys) != total {
		t.Fatalf("listed %d keys (%v), want %d", len(res.Keys), err, total)
	}
	if len(queries) != 3 || !strings.Contains(queries[2], "cursor=after-2000") || !strings.Contains(queries[0], "q=acme") || !strings.Contains(queries[0], "tier=high") {
		t.Fatalf("queries = %q", queries)
	}

	queries = nil
	out = &testenv.Buffer{}
	if code := run(context.Background(), []string{"key", "list", "--limit", "1200"}, env, out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if rows := strings.Count(out.String(), "k_0000"); rows != 1200 || len(queries) != 2 || !strings.Contains(queries[1], "limit=200") {
		t.Fatalf("--limit 1200: %d rows, queries %q", rows, queries)
	}
}
