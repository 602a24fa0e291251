package tiers

import (
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// A cache write is priced by its TTL: the 1-hour part at 2 × input, the
// rest at the 5-minute 1.25 ×.
func TestOneHourCacheWritePrice(t *testing.T) {
	tb := Builtin()
	tests := []struct {
		name  string
		model string
		n     Tokens
		want  float64
	}{
		{"all 5-minute", "claude-sonnet-4-5", Tokens{CacheWrite: 1_000_000}, 3.75},
		{"all 1-hour", "claude-sonnet-4-5", Tokens{CacheWrite: 1_000_000, CacheWrite1h: 1_000_000}, 6},
		{"split", "claude-haiku-4-5", Tokens{CacheWrite: 3_000_000, CacheWrite1h: 1_000_000}, 2*1.25 + 2},
		{"opus 4.5 1-hour", "claude-opus-4-5-20251101", Tokens{Input: 1_000_000, CacheWrite: 1_000_000, CacheWrite1h: 1_000_000}, 5 + 10},
		{"1-hour count above the total is capped", "claude-sonnet-4-5", Tokens{CacheWrite: 1_000_000, CacheWrite1h: 5_000_000}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tb.ModelCost(tc.model, tc.n)
			if !ok || !near(got, tc.want) {
				t.Fatalf("ModelCost(%s, %+v) = %v, %v; want %v", tc.model, tc.n, got, ok, tc.want)
			}
		})
	}
	// A family's fallback price follows the same rule.
	if got, _ := tb.Cost("opus", Tokens{CacheWrite: 1_000_000, CacheWrite1h: 1_000_000}); !near(got, 30) {
		t.Errorf("opus family 1-hour write = %v, want 30", got)
	}
	// A table may set its own 1-hour rate.
	custom, err := Parse([]byte(`{"tiers":[{"name":"gold","slots":1}],"model_prices":{"acme":{"input":1,"cache_write":1.25,"cache_write_1h":3}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := custom.ModelCost("acme", Tokens{CacheWrite: 1_000_000, CacheWrite1h: 1_000_000}); !near(got, 3) {
		t.Errorf("custom 1-hour write = %v, want 3", got)
	}
}

// A request over 200k input tokens on a model with a 1M context is
// recorded under the long-context name and priced at its rates.
func TestLongContextPrice(t *testing.T) {
	tb := Builtin()
	tests := []struct {
		model string
		input int64
		want  string
	}{
		{"claude-sonnet-4-5-20250929", 200_000, "claude-sonnet-4-5-20250929"},
		{"claude-sonnet-4-5-20250929", 200_001, "claude-sonnet-4-5-20250929" + LongSuffix},
		{"claude-sonnet-4-20250514", 500_000, "claude-sonnet-4-20250514" + LongSuffix},
		{"claude-opus-4-1", 500_000, "claude-opus-4-1"},   // no 1M context
		{"claude-haiku-4-5", 500_000, "claude-haiku-4-5"}, // no 1M context
		{"", 500_000, ""},
	}
	for _, tc := range tests {
		if got := tb.UsageModel(tc.model, tc.input); got != tc.want {
			t.Errorf("UsageModel(%q, %d) = %q, want %q", tc.model, tc.input, got, tc.want)
		}
	}
	n := Tokens{Input: 1_000_000, Output: 1_000_000, CacheWrite: 1_000_000, CacheWrite1h: 500_000, CacheRead: 1_000_000}
	long, ok := tb.ModelCost("claude-sonnet-4-5"+LongSuffix, n)
	if want := 6 + 22.5 + 0.5*7.5 + 0.5*12 + 0.6; !ok || !near(long, want) {
		t.Errorf("long-context cost = %v, %v; want %v", long, ok, want)
	}
	plain, _ := tb.ModelCost("claude-sonnet-4-5", n)
	if want := 3 + 15 + 0.5*3.75 + 0.5*6 + 0.3; !near(plain, want) {
		t.Errorf("plain cost = %v, want %v", plain, want)
	}
	if base, long := BaseModel("claude-sonnet-4-5" + LongSuffix); base != "claude-sonnet-4-5" || !long {
		t.Errorf("BaseModel = %q, %v", base, long)
	}
}

func TestSellingSettingsValidate(t *testing.T) {
	good, err := Parse([]byte(`{"tiers":[{"name":"gold","slots":1,"price_multiplier":1.5,"validity_from":"first_use","budgets":{"day_usd":5,"week_usd":20}},{"name":"basic","slots":2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	gold, _ := good.Get("gold")
	basic, _ := good.Get("basic")
	if gold.Multiplier() != 1.5 || basic.Multiplier() != 1 || !gold.FromFirstUse() || basic.FromFirstUse() {
		t.Errorf("gold %v/%v, basic %v/%v", gold.Multiplier(), gold.FromFirstUse(), basic.Multiplier(), basic.FromFirstUse())
	}
	if gold.Budgets.IsZero() || !basic.Budgets.IsZero() || gold.Budgets.DayUSD != 5 {
		t.Errorf("budgets gold %+v basic %+v", gold.Budgets, basic.Budgets)
	}
	for _, bad := range []struct{ doc, field string }{
		{`{"tiers":[{"name":"gold","slots":1,"price_multiplier":-1}]}`, "price_multiplier"},
		{`{"tiers":[{"name":"gold","slots":1,"validity_from":"later"}]}`, "validity_from"},
		{`{"tiers":[{"name":"gold","slots":1,"budgets":{"day_usd":-2}}]}`, "budgets.day_usd"},
		{`{"tiers":[{"name":"gold","slots":1}],"model_prices":{"m":{"input":1,"cache_write_1h":-1}}}`, "cache_write_1h"},
		{`{"tiers":[{"name":"gold","slots":1}],"model_prices":{"m":{"input":1,"long_context":{"input":-1}}}}`, "long_context.input"},
	} {
		if _, err := Parse([]byte(bad.doc)); err == nil || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("Parse(%s) = %v, want an error naming %s", bad.doc, err, bad.field)
		}
	}
}
