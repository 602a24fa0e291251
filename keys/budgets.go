package keys

import (
	"context"
	"fmt"
	"math"
	"strconv"
)

// Budgets is a key's own spending budget in USD per UTC day and week. A
// window left at zero keeps the tier's budget for it: the key overrides
// its tier window by window.
type Budgets struct {
	DayUSD  float64
	WeekUSD float64
}

// IsZero reports whether the key keeps its tier's budgets in both windows.
func (b Budgets) IsZero() bool { return b.DayUSD == 0 && b.WeekUSD == 0 }

// MaxBudgetUSD bounds a budget: beyond it a budget is a typo, not a limit.
const MaxBudgetUSD = 1e9

// Check refuses a negative, infinite or absurd budget.
func (b Budgets) Check() error {
	for _, v := range []struct {
		name string
		usd  float64
	}{{"day", b.DayUSD}, {"week", b.WeekUSD}} {
		if math.IsNaN(v.usd) || v.usd < 0 || v.usd > MaxBudgetUSD {
			return fmt.Errorf("keys: the %s budget must be 0 (the tier's) to %g USD", v.name, float64(MaxBudgetUSD))
		}
	}
	return nil
}

// Redis hash fields of a key's own budgets (USD as decimal text; absent or
// 0: the tier's).
const (
	fBudgetDay  = "budget_day_usd"
	fBudgetWeek = "budget_week_usd"
)

func usdText(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// parseBudgets reads the budget fields of a Redis record.
func parseBudgets(id string, m map[string]string) (Budgets, error) {
	var b Budgets
	for _, f := range []struct {
		name string
		dst  *float64
	}{{fBudgetDay, &b.DayUSD}, {fBudgetWeek, &b.WeekUSD}} {
		v := m[f.name]
		if v == "" {
			continue
		}
		usd, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return Budgets{}, fmt.Errorf("keys: record %s: field %q: %w", id, f.name, err)
		}
		*f.dst = usd
	}
	if err := b.Check(); err != nil {
		return Budgets{}, fmt.Errorf("keys: record %s: %w", id, err)
	}
	return b, nil
}

// budgetEntry is a key's budgets in the ledger (a snapshot record or a
// budget change's line).
type budgetEntry struct {
	DayUSD  float64 `json:"day_usd,omitempty"`
	WeekUSD float64 `json:"week_usd,omitempty"`
}

func toBudgetEntry(b Budgets) *budgetEntry {
	if b.IsZero() {
		return nil
	}
	return &budgetEntry{DayUSD: b.DayUSD, WeekUSD: b.WeekUSD}
}

func (e *budgetEntry) budgets() Budgets {
	if e == nil {
		return Budgets{}
	}
	return Budgets{DayUSD: e.DayUSD, WeekUSD: e.WeekUSD}
}

// SetBudgets replaces the key's own budgets (zero windows: the tier's), in
// Redis, where every replica's admission reads it, and in the ledger, so it
// survives a flush and sync.
func (s *Store) SetBudgets(ctx context.Context, ref string, b Budgets) (Record, error) {
	if err := b.Check(); err != nil {
		return Record{}, err
	}
	h, err := s.resolve(ctx, ref)
	if err != nil {
		return Record{}, err
	}
	before, after, err := s.change(ctx, h, "", fBudgetDay, usdText(b.DayUSD), fBudgetWeek, usdText(b.WeekUSD))
	if err != nil {
		return Record{}, err
	}
	lr, err := s.change1(ctx, Change{Op: OpBudget, Tier: before.Tier, Hash: h, Budgets: b})
	if err != nil {
		s.undo(ctx, before, fBudgetDay, fBudgetWeek)
		return before, fmt.Errorf("keys: set budgets: ledger: %w", err)
	}
	after.Account = lr.Account
	return after, nil
}
