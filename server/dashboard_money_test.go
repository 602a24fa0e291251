package server

import (
	"fmt"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/tiers"
)

// dashboardCost is the text the dashboard shows for the cost of one
// answer's usage at the table's price for family.
func dashboardCost(tb *tiers.Table, family string, u fakeupstream.Usage) string {
	c, _ := tb.Cost(family, tiers.Tokens{Input: int64(u.InputTokens), Output: int64(u.OutputTokens),
		CacheWrite: int64(u.CacheCreationInputTokens), CacheRead: int64(u.CacheReadInputTokens)})
	return fmt.Sprintf("$%.4f", tiers.RoundUSD(c))
}
