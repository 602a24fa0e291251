package server

import (
	"context"
	"time"

	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/spend"
	"github.com/claude-route/claude-route/tiers"
	"github.com/claude-route/claude-route/usage"
)

// SpendBook keeps what keys spent per UTC day and week (spend.Book).
type SpendBook interface {
	Add(ctx context.Context, keyHash string, usd float64) error
	Spent(ctx context.Context, keyHash string) (spend.Spent, error)
}

// addSpend adds one answer's list-price cost to the key's spend, when the
// key has budgets. It runs after the answer on the server's background
// group: one pipeline, so every replica sees it at once.
func (s *Server) addSpend(cl *caller, family, model string, u usage.Usage) {
	if s.d.Spend == nil || cl.Budgets() == (spend.Limits{}) {
		return
	}
	n := tokensOf(usage.Totals{Requests: 1, Usage: u})
	usd, ok := s.d.Tiers.ModelCost(model, n)
	if !ok {
		usd, _ = s.d.Tiers.Cost(family, n)
	}
	if usd <= 0 {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.d.Spend.Add(ctx, cl.Hash, usd); err != nil {
			s.log.WithFields(logFields(cl)).WithError(err).Warn("could not add the answer's cost to the key's spend")
		}
	}()
}

// BudgetView is one budget as /v1/usage, key show and the dashboard show
// it: the window, its budget, what was spent and when it starts afresh.
type BudgetView struct {
	Window    string    `json:"window"` // "day" or "week"
	BudgetUSD float64   `json:"budget_usd"`
	SpentUSD  float64   `json:"spent_usd"`
	Reset     time.Time `json:"reset"`
}

// budgetViews lists the key's budgets with their spend (nil: none).
func (s *Server) budgetViews(ctx context.Context, rec keys.Record, tier *tiers.Tier) ([]BudgetView, error) {
	hash := rec.Hash
	lim := (&caller{Rec: rec, Tier: tier}).Budgets()
	if s.d.Spend == nil || lim == (spend.Limits{}) {
		return nil, nil
	}
	sp, err := s.d.Spend.Spent(ctx, hash)
	if err != nil {
		return nil, err
	}
	var out []BudgetView
	if lim.DayUSD > 0 {
		out = append(out, BudgetView{Window: "day", BudgetUSD: lim.DayUSD, SpentUSD: sp.DayUSD, Reset: sp.DayReset})
	}
	if lim.WeekUSD > 0 {
		out = append(out, BudgetView{Window: "week", BudgetUSD: lim.WeekUSD, SpentUSD: sp.WeekUSD, Reset: sp.WeekReset})
	}
	return out, nil
}
