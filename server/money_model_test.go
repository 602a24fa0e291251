package server

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/tiers"
	"github.com/claude-route/claude-route/usage"
)

// TestCostPerModel: traffic recorded with its model is priced at the
// model's list price, the rest of its family at the family's price, in
// every window and in the daily export lines.
func TestCostPerModel(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	clk := clock.NewFake(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	rec := usage.NewRecorder(rdb, clk)
	s := &Server{d: Deps{Tiers: tiers.NewLive(tiers.Builtin(), ""), Usage: rec}}
	ctx := context.Background()
	million := usage.Usage{InputTokens: 1_000_000}
	// Opus 4.5 lists at $5 per million input tokens; the opus family at $15.
	if err := rec.RecordModel(ctx, "k1", "a1", "opus", "claude-opus-4-5-20251101", million); err != nil {
		t.Fatal(err)
	}
	if err := rec.RecordModel(ctx, "k1", "a1", "opus", "claude-opus-4-1-20250805", million); err != nil {
		t.Fatal(err)
	}
	if err := rec.Record(ctx, "k1", "a1", "opus", million); err != nil { // no model: family price
		t.Fatal(err)
	}
	if err := rec.RecordModel(ctx, "k1", "a1", "sonnet", "claude-sonnet-4-5", usage.Usage{OutputTokens: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	want := 5.0 + 15 + 15 + 15
	check := func(when string) {
		t.Helper()
		sum, err := rec.Key(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		c := s.costOf(sum)
		for name, got := range map[string]float64{"5h": c.Last5h, "24h": c.Last24h, "30d": c.Last30d, "total": c.Total} {
			if math.Abs(got-want) > 1e-6 {
				t.Errorf("%s, %s: $%v, want $%v", when, name, got, want)
			}
		}
		days, err := rec.KeyDays(ctx, "k1", clk.Now(), clk.Now())
		if err != nil || len(days) != 1 {
			t.Fatalf("days: %v %d", err, len(days))
		}
		if got := s.splitCost(days[0].ByFamily, days[0].ByModel, nil); math.Abs(got-want) > 1e-6 {
			t.Errorf("%s, export day: $%v, want $%v", when, got, want)
		}
	}
	check("unflushed")
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check("flushed")
}

// Through the proxy: an Opus 4.5 request costs Opus 4.5's list price
// ($5 / $25), not the opus family's ($15 / $75).
func TestProxyRecordsCostPerModel(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	body := msgBody("claude-opus-4-5-20251101", false)
	ans, err := fakeupstream.Reply([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	u := ans.Usage
	want := (float64(u.InputTokens)*5 + float64(u.OutputTokens)*25 +
		float64(u.CacheCreationInputTokens)*6.25 + float64(u.CacheReadInputTokens)*0.50) / 1e6
	if r := post(t, url, "/v1/messages", key, body); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e.srvs[0].waitBackground()
	_, cost := customerView(t, url, key)
	if want == 0 || math.Abs(cost.Total-want) > 2e-6 {
		t.Fatalf("cost %+v, want $%v at the model's price", cost, want)
	}
}
