package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Utilization written by one replica shows in the other's pool view and
// /metrics; the pool gauges come from a snapshot read at most every 10 s.
func TestUtilizationInPoolAndMetricsFromSnapshot(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, withClock(clk))
	e.apiAccount("high", "a1")
	e.start()
	u2 := e.start()
	f5, f7 := 0.42, 0.17
	e.apps[0].Util.Observe("a1", accounts.Utilization{FiveHour: &f5, SevenDay: &f7})
	if err := e.apps[0].Util.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var pool struct{ Tiers []PoolTier }
	e.admin(http.MethodGet, "/admin/api/pool?tier=high", nil, &pool)
	if len(pool.Tiers) != 1 || len(pool.Tiers[0].Accounts) != 1 {
		t.Fatalf("pool: %+v", pool)
	}
	if u := pool.Tiers[0].Accounts[0].Utilization; u == nil || *u.FiveHour != 0.42 || *u.SevenDay != 0.17 {
		t.Fatalf("utilization in pool: %+v", u)
	}
	counter := &testenv.RoundTrips{}
	e.apps[1].Store.Client.AddHook(counter)
	body := scrape(t, u2)
	if !strings.Contains(body, `claude_route_account_utilization{account="a1",window="5h"} 0.42`) ||
		!strings.Contains(body, `claude_route_account_utilization{account="a1",window="7d"} 0.17`) {
		t.Fatalf("utilization missing from /metrics:\n%s", body)
	}
	// The pool snapshot is what a scrape reads; the store watchdog's own
	// check runs every second on another key and is not a scrape's cost.
	const poolKeys = "cr:{pool}:"
	reads := counter.Touching(poolKeys)
	for i := 0; i < 5; i++ {
		scrape(t, u2)
	}
	if n := counter.Touching(poolKeys); n != reads {
		t.Fatalf("scrapes within 10 s must not read the store: %d round trips after the first scrape's %d: %v", n-reads, reads, counter.Names())
	}
	clk.Advance(11 * time.Second)
	scrape(t, u2)
	if n := counter.Touching(poolKeys); n == reads {
		t.Fatal("a scrape after 10 s must refresh the snapshot")
	}
}
