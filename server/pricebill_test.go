package server

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/tiers"
)

// cachedBody is a request whose system prompt is cached with the given TTL
// ("" for the default 5 minutes); the fake reports 100 cache-write tokens
// for it, split by TTL as the API does.
func cachedBody(model string, stream bool, ttl string) string {
	cc := map[string]any{"type": "ephemeral"}
	if ttl != "" {
		cc["ttl"] = ttl
	}
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 64, "stream": stream,
		"system":   []map[string]any{{"type": "text", "text": "You are terse.", "cache_control": cc}},
		"messages": []map[string]any{{"role": "user", "content": "Hello there, proxy"}}})
	return string(b)
}

// sonnetCost is the list price of one fake answer on Sonnet 4.5, with its
// cache writes at the rate of their TTL.
func sonnetCost(t *testing.T, body string) float64 {
	t.Helper()
	ans, err := fakeupstream.Reply([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	u := ans.Usage
	return (float64(u.InputTokens)*3 + float64(u.OutputTokens)*15 + float64(u.CacheCreation.Ephemeral5m)*3.75 +
		float64(u.CacheCreation.Ephemeral1h)*6 + float64(u.CacheReadInputTokens)*0.30) / 1e6
}

// A 1-hour cache write is billed at 2 × input, a 5-minute one at 1.25 ×,
// streamed or not; the customer's cost and the export agree.
func TestOneHourCacheWritesPricedAtTheirRate(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "stream"}[stream], func(t *testing.T) {
			e := newEnv(t)
			e.apiAccount("high", "h1")
			url := e.start()
			key := e.issue("high")
			var want float64
			for _, ttl := range []string{"1h", "", "5m"} {
				body := cachedBody("claude-sonnet-4-5", stream, ttl)
				want += sonnetCost(t, body)
				if r := post(t, url, "/v1/messages", key, body); r.status != 200 {
					t.Fatalf("%d %s", r.status, r.body)
				}
			}
			e.srvs[0].waitBackground()
			sum, cost := customerView(t, url, key)
			if sum.Total.CacheCreation1hInputTokens != 100 || sum.Total.CacheCreationInputTokens != 300 {
				t.Fatalf("cache writes %+v, want 300 of which 100 for an hour", sum.Total)
			}
			if math.Abs(cost.Total-want) > 2e-6 {
				t.Fatalf("cost %v, want %v (1-hour writes at 2 × input)", cost.Total, want)
			}
			// At the 5-minute rate for every write it would be 100 × 2.25 less.
			if all5m := want - 100*(6-3.75)/1e6; math.Abs(cost.Total-all5m) < 1e-7 {
				t.Fatalf("1-hour writes priced at the 5-minute rate")
			}
		})
	}
}

// A request over 200k input tokens on Sonnet 4.5 is billed whole at the
// long-context rates; one below stays at the plain rates.
func TestLongContextRequestsPricedAtLongRates(t *testing.T) {
	// The fake upstream reads 850 kB and counts its tokens before it
	// answers: under -race on a loaded CI machine that took more than the
	// harness's 2 s header timeout (a 504). Timeouts are not this test's
	// subject.
	e := newEnv(t, withServerConfig(func(c *Config) { c.HeaderTimeout = time.Minute }))
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	long, _ := json.Marshal(map[string]any{"model": "claude-sonnet-4-5", "max_tokens": 64,
		"messages": []map[string]any{{"role": "user", "content": strings.Repeat("word ", 170_000)}}})
	ans, err := fakeupstream.Reply(long)
	if err != nil || ans.Usage.InputTokens <= tiers.LongContextTokens {
		t.Fatalf("fake answer %+v %v: not a long-context request", ans.Usage, err)
	}
	short := msgBody("claude-sonnet-4-5", false)
	want := (float64(ans.Usage.InputTokens)*6+float64(ans.Usage.OutputTokens)*22.5)/1e6 + sonnetCost(t, short)
	for _, b := range []string{string(long), short} {
		if r := post(t, url, "/v1/messages", key, b); r.status != 200 {
			t.Fatalf("%d %.200s", r.status, r.body)
		}
	}
	e.srvs[0].waitBackground()
	_, cost := customerView(t, url, key)
	if math.Abs(cost.Total-want) > 2e-6 || math.Abs(cost.Last5h-want) > 2e-6 {
		t.Fatalf("cost %+v, want %v", cost, want)
	}
}

// A tier's price_multiplier gives what its customers are billed: the admin
// usage and the export show cost, billed and margin per tier.
func TestTierPriceMultiplierBilledAndMargin(t *testing.T) {
	e := newEnv(t)
	high, _ := e.tiers.Get("high")
	high.PriceMultiplier = 1.5
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	body := cachedBody("claude-sonnet-4-5", false, "1h")
	cost := sonnetCost(t, body)
	if r := post(t, url, "/v1/messages", key, body); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e.srvs[0].waitBackground()
	var adm struct {
		Tiers []TierMoney `json:"tiers"`
	}
	if st := e.admin(http.MethodGet, "/admin/api/usage", nil, &adm); st != 200 {
		t.Fatal(st)
	}
	found := false
	for _, tm := range adm.Tiers {
		if tm.Tier != "high" {
			if tm.PriceMultiplier != 1 || tm.Billed.Total != 0 {
				t.Errorf("tier %s: %+v", tm.Tier, tm)
			}
			continue
		}
		found = true
		if tm.PriceMultiplier != 1.5 || math.Abs(tm.Cost.Last30d-cost) > 2e-6 ||
			math.Abs(tm.Billed.Last30d-1.5*cost) > 2e-6 || math.Abs(tm.Margin.Last30d-0.5*cost) > 2e-6 {
			t.Fatalf("tier high %+v, want cost %v billed %v", tm, cost, 1.5*cost)
		}
	}
	if !found {
		t.Fatal("no tier high in the admin usage")
	}
	today := time.Now().UTC().Format(dayLayout)
	var ex struct {
		Rows []ExportRow `json:"rows"`
	}
	if st := e.admin(http.MethodGet, "/admin/api/usage/export?since="+today+"&until="+today, nil, &ex); st != 200 || len(ex.Rows) != 1 {
		t.Fatalf("export %d %+v", st, ex.Rows)
	}
	r := ex.Rows[0]
	if math.Abs(r.CostUSD-cost) > 2e-6 || math.Abs(r.BilledUSD-1.5*cost) > 2e-6 || math.Abs(r.MarginUSD-0.5*cost) > 2e-6 || r.CacheCreation1hTokens != 100 {
		t.Fatalf("export row %+v, want cost %v billed ×1.5", r, cost)
	}
}
