package server

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/tiers"
)

// benchTiers is the tier the yardstick (../shared/perf/cr.sh) uses: a sonnet
// quota far above the traffic, so every request takes the counted path.
const benchTiers = `{"tiers": [{"name": "bench", "slots": 50, "families": ["sonnet", "opus", "other"],
  "quotas": {"sonnet": 100000000, "opus": 100000000}, "validity": "720h"}]}`

// commandStats reads INFO commandstats: command → calls.
func commandStats(t testing.TB, c redis.UniversalClient) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out
}

// commandsBudget is the most Redis commands a request of a bound key may
// cost on average. Issue 13 asks for 10; usage now costs about 0.3 per
// request, and the rest is admission: the key and account HGETALLs, seven
// pool-state reads and the quota script's six commands (16.4 measured when
// this test landed). The key's concurrency lease (issue 11) adds seven:
// the enter script in the authentication pipeline (EVALSHA, TIME, ZCARD,
// ZADD, PEXPIRE, ZCOUNT) and the release (one ZREM); the pool state no
// longer reads the account's slot count: 22.4 measured.
// Reaching 10 needs the pool state and the quota window in fewer keys;
// until then the test keeps what was won from coming back.
const commandsBudget = 23

// Redis commands per request of one bound key, usage included, as the
// server counts them (INFO commandstats, which also counts the commands a
// script runs). A private redis-server, so no other test's traffic is
// counted.
func TestRedisCommandsPerRequest(t *testing.T) {
	srv := testenv.StartRedis(t)
	tt, err := tiers.Parse([]byte(benchTiers))
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
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(srv.Port)})
	t.Cleanup(func() { _ = c.Close() })
	before := commandStats(t, c)
	const n = 200
	for i := range n {
		if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", i%2 == 1)); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if err := app.Usage.Flush(ctx); err != nil { // this traffic's usage, counted once
		t.Fatal(err)
	}
	after := commandStats(t, c)
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
	per := float64(total) / n
	t.Logf("%.2f Redis commands per request: %s", per, strings.Join(parts, ", "))
	if per > commandsBudget {
		t.Fatalf("%.2f Redis commands per request, budget %d: %s", per, commandsBudget, strings.Join(parts, ", "))
	}
}
