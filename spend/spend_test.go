package spend

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

const testDB = 10 // this package's logical database (DESIGN.md)

// Spend adds up per UTC day and per week from Monday, is read the same by
// every Book on the store (replicas), and starts afresh at each reset.
func TestSpendWindowsAndBudgets(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) redis.UniversalClient{
		"miniredis": func(t *testing.T) redis.UniversalClient { c, _ := testenv.Mini(t); return c },
		"redis":     func(t *testing.T) redis.UniversalClient { return testenv.Redis(t, testDB) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rdb := open(t)
			// Wednesday 2026-12-09 22:00 UTC.
			clk := clock.NewFake(time.Date(2026, 12, 9, 22, 0, 0, 0, time.UTC))
			a, b := New(rdb, clk), New(rdb, clk) // two replicas
			limits := Limits{DayUSD: 1, WeekUSD: 2.5}
			for _, usd := range []float64{0.4, 0.35} {
				if err := a.Add(ctx, "k1", usd); err != nil {
					t.Fatal(err)
				}
			}
			s, err := b.Spent(ctx, "k1")
			if err != nil || s.DayUSD != 0.75 || s.WeekUSD != 0.75 {
				t.Fatalf("spent %+v, %v", s, err)
			}
			if !s.DayReset.Equal(time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)) || !s.WeekReset.Equal(time.Date(2026, 12, 14, 0, 0, 0, 0, time.UTC)) {
				t.Fatalf("resets %v %v, want Thursday 00:00 and Monday 00:00", s.DayReset, s.WeekReset)
			}
			if r := Over(s, limits); r != nil {
				t.Fatalf("below budget refused: %v", r)
			}
			if err := b.Add(ctx, "k1", 0.25); err != nil {
				t.Fatal(err)
			}
			s, _ = a.Spent(ctx, "k1")
			r := Over(s, limits)
			if r == nil || r.Window != "daily" || r.Reset != s.DayReset {
				t.Fatalf("day budget reached: %+v", r)
			}
			if other, _ := a.Spent(ctx, "k2"); other.DayUSD != 0 {
				t.Fatalf("another key's spend: %+v", other)
			}
			// The next day starts afresh; the week goes on.
			clk.Advance(3 * time.Hour)
			s, _ = a.Spent(ctx, "k1")
			if s.DayUSD != 0 || s.WeekUSD != 1 || Over(s, limits) != nil {
				t.Fatalf("next day: %+v", s)
			}
			_ = a.Add(ctx, "k1", 0.9)
			_ = a.Add(ctx, "k1", 0.9)
			s, _ = a.Spent(ctx, "k1")
			if r := Over(s, limits); r == nil || r.Window != "weekly" || !r.Reset.Equal(time.Date(2026, 12, 14, 0, 0, 0, 0, time.UTC)) {
				t.Fatalf("week budget reached: %+v (%+v)", r, s)
			}
			// Monday: a new week.
			clk.Advance(4 * 24 * time.Hour)
			if s, _ = a.Spent(ctx, "k1"); s.WeekUSD != 0 {
				t.Fatalf("new week: %+v", s)
			}
			if err := a.Add(ctx, "k1", 0); err != nil {
				t.Fatal(err)
			}
		})
	}
}
