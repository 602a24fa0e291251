package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/tiers"
)

// benchTiers is the tier the yardstick (../shared/perf/cr.sh) uses: a sonnet
// quota far above the traffic, so every request takes the counted path.
const benchTiers = `{"tiers": [{"name": "bench", "slots": 50, "families": ["sonnet", "opus", "other"],
  "quotas": {"sonnet": 100000000, "opus": 100000000}, "validity": "720h"}]}`

// Redis commands per request of one bound key, usage included, as the
// server counts them (INFO commandstats, which also counts the commands a
// script runs). Issue 13 asks for at most 10. A private redis-server, so no
// other test's traffic is counted. The key's record and its account's
// state come from the cache (CACHE_TTL), so what is left is the quota
// script, the concurrency lease where the tier has one, and usage (about
// 0.4 per request, flushed once a second).
func TestRedisCommandsPerRequest(t *testing.T) {
	cases := []struct {
		name   string
		tiers  string
		budget float64
	}{
		// The yardstick's tier (../shared/perf/cr.sh): no concurrency limit,
		// so no lease. 22.4 before the cache, 7.5 with it.
		{"bench tier, no concurrency limit", benchTiers, 8},
		// A sold tier: the lease's enter script and its release.
		{"tier with concurrency 4", `{"tiers": [{"name": "bench", "slots": 50, "concurrency": 4, "families": ["sonnet", "opus", "other"],
  "quotas": {"sonnet": 100000000, "opus": 100000000}, "validity": "720h"}]}`, 15},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			per, parts := commandsPerRequest(t, tc.tiers)
			t.Logf("%.2f Redis commands per request: %s", per, parts)
			if per > tc.budget {
				t.Fatalf("%.2f Redis commands per request, budget %.0f: %s", per, tc.budget, parts)
			}
		})
	}
}

func commandsPerRequest(t *testing.T, tiersJSON string) (float64, string) {
	srv := testenv.StartRedis(t)
	tt, err := tiers.Parse([]byte(tiersJSON))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withRedis(srv.URL()))
	e.tiers = tt
	e.apiAccount("bench", "b1")
	url := e.start()
	key := e.issue("bench")
	ctx := context.Background()
	for i := range 3 { // binds the key, loads the scripts, fills the pools
		if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", i%2 == 1)); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	app := e.apps[0]
	if err := app.Usage.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	c := testenv.Client(t, srv.URL())
	before := testenv.CommandStats(t, c)
	const n = 200
	for i := range n {
		if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", i%2 == 1)); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if err := app.Usage.Flush(ctx); err != nil { // this traffic's usage, counted once
		t.Fatal(err)
	}
	after := testenv.CommandStats(t, c)
	var total int64
	var parts []string
	for name, calls := range after {
		d := calls - before[name]
		if name == "info" {
			d-- // the second reading itself
		}
		if d <= 0 {
			continue
		}
		total += d
		parts = append(parts, fmt.Sprintf("%s %.2f", name, float64(d)/n))
	}
	sort.Strings(parts)
	return float64(total) / n, strings.Join(parts, ", ")
}
