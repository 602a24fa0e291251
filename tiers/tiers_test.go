package tiers

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestBuiltinMatchesSpec(t *testing.T) {
	tb := Builtin()
	cases := []struct {
		tier     string
		slots    int
		families []string
		quotas   map[string]int
		validity time.Duration
	}{
		{"trial", 7, []string{"sonnet"}, map[string]int{"sonnet": 42}, 24 * time.Hour},
		{"medium", 7, []string{"sonnet"}, map[string]int{"sonnet": 42}, 30 * 24 * time.Hour},
		{"high", 3, nil, map[string]int{"opus": 10, "sonnet": 50}, 0},
		{"supreme", 2, nil, map[string]int{"opus": 15, "sonnet": 75}, 0},
	}
	for _, c := range cases {
		tr, ok := tb.Get(c.tier)
		if !ok {
			t.Fatalf("tier %s missing", c.tier)
		}
		if tr.Slots != c.slots || time.Duration(tr.Validity) != c.validity {
			t.Errorf("%s: slots %d validity %v", c.tier, tr.Slots, tr.Validity)
		}
		for f, n := range c.quotas {
			if got, ok := tr.Quota(f); !ok || got != n {
				t.Errorf("%s quota %s = %d,%v want %d", c.tier, f, got, ok, n)
			}
		}
		if _, ok := tr.Quota(Other); ok {
			t.Errorf("%s: other family must be unlimited", c.tier)
		}
		if len(c.families) > 0 && (!tr.Allows("sonnet") || tr.Allows("opus") || tr.Allows(Other)) {
			t.Errorf("%s: sonnet only", c.tier)
		}
		if len(c.families) == 0 && (!tr.Allows("opus") || !tr.Allows(Other)) {
			t.Errorf("%s: all families", c.tier)
		}
	}
	if time.Duration(tb.Window) != 5*time.Hour {
		t.Errorf("window %v", tb.Window)
	}
}

func TestFamilyOf(t *testing.T) {
	tb := Builtin()
	for model, fam := range map[string]string{
		"claude-opus-4-1-20250805":   "opus",
		"claude-sonnet-4-5-20250929": "sonnet",
		"claude-3-7-SONNET-latest":   "sonnet",
		"claude-haiku-4-5":           Other,
		"":                           Other,
	} {
		if got := tb.FamilyOf(model); got != fam {
			t.Errorf("FamilyOf(%q) = %q want %q", model, got, fam)
		}
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name, file, wantErr string
	}{
		{"only tiers", `{"tiers":[{"name":"gold","slots":4,"quotas":{"opus":3},"validity":"48h"}]}`, ""},
		{"seconds validity", `{"tiers":[{"name":"gold","slots":4,"validity":3600}]}`, ""},
		{"bad json", `{"tiers":[`, "invalid JSON"},
		{"unknown field", `{"tiers":[{"name":"gold","slots":4,"slotz":3}]}`, "slotz"},
		{"zero slots", `{"tiers":[{"name":"gold","slots":0}]}`, "tiers[0].slots"},
		{"bad name", `{"tiers":[{"name":"Gold!","slots":1}]}`, "tiers[0].name"},
		{"dup tier", `{"tiers":[{"name":"a","slots":1},{"name":"a","slots":1}]}`, "tiers[1].name"},
		{"unknown family", `{"tiers":[{"name":"a","slots":1,"quotas":{"gpt":3}}]}`, "tiers[0].quotas"},
		{"neg quota", `{"tiers":[{"name":"a","slots":1,"quotas":{"opus":-1}}]}`, "tiers[0].quotas.opus"},
		{"no tiers", `{"tiers":[]}`, "tiers: at least one"},
		{"bad window", `{"window":"-1h","tiers":[{"name":"a","slots":1}]}`, "window"},
		{"family no match", `{"families":[{"name":"x"}],"tiers":[{"name":"a","slots":1}]}`, "families[0].match"},
		{"bad duration", `{"tiers":[{"name":"a","slots":1,"validity":"soon"}]}`, "duration"},
		{"concurrency and overflow", `{"tiers":[{"name":"a","slots":1,"concurrency":3,"overflow":false}]}`, ""},
		{"neg concurrency", `{"tiers":[{"name":"a","slots":1,"concurrency":-1}]}`, "tiers[0].concurrency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, err := Parse([]byte(c.file))
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if tb.Window == 0 || len(tb.Families) == 0 {
					t.Fatalf("defaults not filled: %+v", tb)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want it to mention %q", err, c.wantErr)
			}
		})
	}
	_, err := Parse([]byte(`{"tiers":[{"name":"a","slots":0}]}`))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("validation errors must wrap ErrInvalid: %v", err)
	}
}

func TestModelsForAndText(t *testing.T) {
	tb := Builtin()
	trial, _ := tb.Get("trial")
	for _, m := range tb.ModelsFor(trial) {
		if m.Family != "sonnet" {
			t.Errorf("trial lists %s", m.ID)
		}
	}
	high, _ := tb.Get("high")
	if len(tb.ModelsFor(high)) <= len(tb.ModelsFor(trial)) {
		t.Errorf("high should list more models than trial")
	}
	if got := trial.Title() + " tier can only use " + trial.AllowedText() + " models"; got != "Trial tier can only use Sonnet models" {
		t.Errorf("text %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"tiers":[{"name":"gold","slots":4,"quotas":{"opus":3},"validity":"48h"}]}`))
	f.Add([]byte(`{"window":"5h","families":[{"name":"x","match":["x"]}],"tiers":[{"name":"a","slots":1,"families":["x"]}]}`))
	f.Add([]byte(`{"tiers":[null]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := Parse(b)
		if err != nil {
			return
		}
		// A table that parses must be usable without panics.
		for _, tr := range tb.Tiers {
			_ = tb.ModelsFor(tr)
			_ = tr.AllowedText()
		}
		_ = tb.FamilyOf("claude-sonnet-4")
	})
}

func TestConcurrencyAndOverflowDefaults(t *testing.T) {
	b := Builtin()
	for name, want := range map[string]int{"trial": 2, "medium": 2, "high": 4, "supreme": 6} {
		tr, _ := b.Get(name)
		if tr.MaxConcurrent() != want || !tr.Overflows() {
			t.Errorf("%s: concurrency %d overflow %v", name, tr.MaxConcurrent(), tr.Overflows())
		}
	}
	tb, err := Parse([]byte(`{"tiers":[{"name":"a","slots":1},{"name":"d","slots":1,"concurrency":5,"overflow":false}]}`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tb.Get("a")
	d, _ := tb.Get("d")
	if a.MaxConcurrent() != 0 || !a.Overflows() || d.MaxConcurrent() != 5 || d.Overflows() {
		t.Fatalf("a %+v d %+v", a, d)
	}
}

func TestPrices(t *testing.T) {
	def := Builtin()
	if c, ok := def.Cost("opus", Tokens{Input: 1_000_000, Output: 1_000_000, CacheWrite: 1_000_000, CacheRead: 1_000_000}); !ok || c != 15+75+18.75+1.5 {
		t.Fatalf("opus cost %v %v", c, ok)
	}
	if c, ok := def.Cost("sonnet", Tokens{Input: 2000, Output: 1000}); !ok || RoundUSD(c) != 0.021 {
		t.Fatalf("sonnet cost %v", c)
	}
	tb, err := Parse([]byte(`{"tiers":[{"name":"gold","slots":1}],"prices":{"sonnet":{"input":1,"output":2,"cache_write":0,"cache_read":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := tb.Cost("sonnet", Tokens{Input: 1_000_000, Output: 1_000_000}); c != 3 {
		t.Fatalf("override: %v", c)
	}
	if c, _ := tb.Cost("opus", Tokens{Output: 1_000_000}); c != 75 {
		t.Fatalf("built-in price kept beside an override: %v", c)
	}
	// Custom families: built-in prices of families the table dropped go too.
	tb, err = Parse([]byte(`{"families":[{"name":"big","match":["opus"]}],"tiers":[{"name":"gold","slots":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.Cost("big", Tokens{Input: 1}); ok {
		t.Fatal("a family without a price has no cost")
	}
	for _, bad := range []string{
		`{"tiers":[{"name":"gold","slots":1}],"prices":{"nope":{"input":1}}}`,
		`{"tiers":[{"name":"gold","slots":1}],"prices":{"opus":{"input":-1}}}`,
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestModelPrices: a model takes its own list price (exact, or the longest
// listed name its dated form extends), else its family's; the tiers file
// overrides or adds models.
func TestModelPrices(t *testing.T) {
	million := Tokens{Input: 1_000_000, Output: 1_000_000, CacheWrite: 1_000_000, CacheRead: 1_000_000}
	def := Builtin()
	for _, c := range []struct {
		model string
		want  float64
	}{
		{"claude-opus-4-5-20251101", 5 + 25 + 6.25 + 0.5},   // newer Opus is cheaper than its family's price
		{"claude-opus-4-1-20250805", 15 + 75 + 18.75 + 1.5}, // not the shorter "claude-opus-4"
		{"claude-opus-4-20250514", 15 + 75 + 18.75 + 1.5},
		{"claude-sonnet-4-5", 3 + 15 + 3.75 + 0.3},
		{"claude-3-5-haiku-20241022", 0.8 + 4 + 1 + 0.08},
		{"claude-haiku-4-5-20251001", 1 + 5 + 1.25 + 0.1},
		{"claude-sonnet-9-future", 3 + 15 + 3.75 + 0.3}, // unknown model: its family (sonnet)
		{"some-other-model", 1 + 5 + 1.25 + 0.1},        // unknown family: "other"
	} {
		got, ok := def.ModelCost(c.model, million)
		if !ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: %v %v, want %v", c.model, got, ok, c.want)
		}
	}
	// "claude-opus-4-5x" does not extend "claude-opus-4-5" (no dash after
	// it): it takes the price of the "claude-opus-4" it does extend.
	if p, _ := def.PriceOf("claude-opus-4-5x"); p.Input != 15 {
		t.Errorf("claude-opus-4-5x priced %+v, want claude-opus-4's", p)
	}
	tb, err := Parse([]byte(`{"tiers":[{"name":"gold","slots":1}],"model_prices":{"claude-opus-4-5":{"input":4,"output":20,"cache_write":5,"cache_read":0.4},"acme-model":{"input":1,"output":1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := tb.ModelCost("claude-opus-4-5-20251101", Tokens{Input: 1_000_000}); c != 4 {
		t.Errorf("override: %v", c)
	}
	if c, _ := tb.ModelCost("claude-sonnet-4-5", Tokens{Output: 1_000_000}); c != 15 {
		t.Errorf("built-in model price kept beside an override: %v", c)
	}
	if c, _ := tb.ModelCost("acme-model", Tokens{Output: 2_000_000}); c != 2 {
		t.Errorf("added model: %v", c)
	}
	for _, bad := range []string{
		`{"tiers":[{"name":"gold","slots":1}],"model_prices":{"claude-opus-4-5":{"output":-1}}}`,
		`{"tiers":[{"name":"gold","slots":1}],"model_prices":{" ":{"input":1}}}`,
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestAliases(t *testing.T) {
	def := Builtin()
	for _, tc := range []struct{ in, want string }{
		{"sonnet", "claude-sonnet-4-5-20250929"},
		{"opus", "claude-opus-4-1-20250805"},
		{"haiku", "claude-haiku-4-5-20251001"},
		{"Sonnet", "Sonnet"}, // exact names only
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"},
	} {
		if got := def.Resolve(tc.in); got != tc.want {
			t.Errorf("Resolve(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	own, err := Parse([]byte(`{"tiers":[{"name":"t","slots":1}],"aliases":{"fast":"claude-haiku-4-5-20251001"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if own.Resolve("fast") != "claude-haiku-4-5-20251001" || own.Resolve("sonnet") != "sonnet" {
		t.Errorf("a file's aliases replace the built-in ones: %v", own.Aliases)
	}
	kept, err := Parse([]byte(`{"tiers":[{"name":"t","slots":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if kept.Resolve("opus") != "claude-opus-4-1-20250805" {
		t.Errorf("a file without aliases keeps the built-in ones: %v", kept.Aliases)
	}
	for _, bad := range []string{
		`{"tiers":[{"name":"t","slots":1}],"aliases":{"a":"b","b":"claude-x"}}`,
		`{"tiers":[{"name":"t","slots":1}],"aliases":{"a":""}}`,
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s) = %v, want ErrInvalid", bad, err)
		}
	}
}
