// Package spend keeps what each client key has spent, in list-price US
// dollars, per UTC day and per UTC week (from Monday), and says when a
// budget is used up.
//
// It is exact across replicas: every answer's cost is added in Redis as
// the answer settles (one INCRBY per window, in micro-dollars), not
// batched in memory like the token totals, so any replica reads every
// other's spend at once. A request is admitted while the spend is below
// the budget; the requests already in flight when it crosses are still
// answered, so a window overshoots its budget by at most their cost.
package spend

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
)

// Redis layout: both windows of a key share its hash tag, so one
// pipeline (one slot on a cluster) adds to both:
//
//	cr:spend:{<keyhash>}:d:<unix day start>   micro-dollars, TTL 2 days
//	cr:spend:{<keyhash>}:w:<unix week start>  micro-dollars, TTL 8 days
const (
	prefix  = "cr:spend:"
	dayTTL  = 48 * time.Hour
	weekTTL = 8 * 24 * time.Hour
)

// Book reads and adds spend. It is safe for concurrent use.
type Book struct {
	rdb redis.UniversalClient
	clk clock.Clock
}

// New returns a Book on rdb whose windows follow clk.
func New(rdb redis.UniversalClient, clk clock.Clock) *Book { return &Book{rdb: rdb, clk: clk} }

// Spent is a key's spend in its current day and week, with when each
// window starts afresh.
type Spent struct {
	DayUSD, WeekUSD     float64
	DayReset, WeekReset time.Time
}

// windows are the current day's and week's starts (UTC; weeks start on
// Monday).
func windows(now time.Time) (day, week time.Time) {
	now = now.UTC()
	day = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	week = day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	return day, week
}

func dayKey(hash string, day time.Time) string {
	return prefix + "{" + hash + "}:d:" + strconv.FormatInt(day.Unix(), 10)
}

func weekKey(hash string, week time.Time) string {
	return prefix + "{" + hash + "}:w:" + strconv.FormatInt(week.Unix(), 10)
}

// Add counts usd more for the key in the current day and week.
func (b *Book) Add(ctx context.Context, keyHash string, usd float64) error {
	micros := int64(math.Round(usd * 1e6))
	if micros <= 0 {
		return nil
	}
	day, week := windows(b.clk.Now())
	dk, wk := dayKey(keyHash, day), weekKey(keyHash, week)
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.IncrBy(ctx, dk, micros)
		p.Expire(ctx, dk, dayTTL)
		p.IncrBy(ctx, wk, micros)
		p.Expire(ctx, wk, weekTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("spend: add: %w", err)
	}
	return nil
}

// Spent reads the key's spend in the current day and week.
func (b *Book) Spent(ctx context.Context, keyHash string) (Spent, error) {
	day, week := windows(b.clk.Now())
	vals, err := b.rdb.MGet(ctx, dayKey(keyHash, day), weekKey(keyHash, week)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Spent{}, fmt.Errorf("spend: read: %w", err)
	}
	out := Spent{DayReset: day.AddDate(0, 0, 1), WeekReset: week.AddDate(0, 0, 7)}
	for i, v := range vals {
		s, _ := v.(string)
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Spent{}, fmt.Errorf("spend: read: %w", err)
		}
		if i == 0 {
			out.DayUSD = float64(n) / 1e6
		} else {
			out.WeekUSD = float64(n) / 1e6
		}
	}
	return out, nil
}

// Limits are a key's budgets; 0 is no cap.
type Limits struct{ DayUSD, WeekUSD float64 }

// Refusal is a budget used up: which window, its budget, what was spent
// and when the window starts afresh.
type Refusal struct {
	Window    string // "daily" or "weekly"
	BudgetUSD float64
	SpentUSD  float64
	Reset     time.Time
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%s budget of $%.2f used up ($%.2f spent); it resets at %s", r.Window, r.BudgetUSD, r.SpentUSD,
		r.Reset.UTC().Format(time.RFC3339))
}

// Over is the refusal for a key that spent its budget in s, or nil while
// every window is below its budget. A week used up is named before a day
// (its reset is the later one, so it is the one the customer waits for).
func Over(s Spent, l Limits) *Refusal {
	if l.WeekUSD > 0 && s.WeekUSD >= l.WeekUSD {
		return &Refusal{Window: "weekly", BudgetUSD: l.WeekUSD, SpentUSD: s.WeekUSD, Reset: s.WeekReset}
	}
	if l.DayUSD > 0 && s.DayUSD >= l.DayUSD {
		return &Refusal{Window: "daily", BudgetUSD: l.DayUSD, SpentUSD: s.DayUSD, Reset: s.DayReset}
	}
	return nil
}
