package main

import (
	"flag"
	"fmt"

	"github.com/claude-route/claude-route/server"
)

// issueBudgets are key issue's --budget-day-usd and --budget-week-usd: the
// new keys' own budgets over their tier's.
type issueBudgets struct{ day, week *float64 }

func budgetFlags(fs *flag.FlagSet) issueBudgets {
	return issueBudgets{
		day:  fs.Float64("budget-day-usd", 0, "the key's own day budget in USD (0: the tier's)"),
		week: fs.Float64("budget-week-usd", 0, "the key's own week budget in USD (0: the tier's)"),
	}
}

// addTo puts the budgets in an issue body; without either flag the field
// is left out and the keys keep their tier's.
func (b issueBudgets) addTo(body map[string]any) {
	if *b.day != 0 || *b.week != 0 {
		body["budgets"] = map[string]float64{"day_usd": *b.day, "week_usd": *b.week}
	}
}

// ownBudgetsText is a key's own budgets for key budget's answer.
func ownBudgetsText(b *server.BudgetsIn) string {
	if b == nil {
		return "the tier's"
	}
	txt := func(v float64) string {
		if v == 0 {
			return "the tier's"
		}
		return fmt.Sprintf("$%.2f", v)
	}
	return "day " + txt(b.DayUSD) + ", week " + txt(b.WeekUSD)
}

// ownMark marks a budget line of key show that is the key's own.
func ownMark(b *server.BudgetsIn, window string) string {
	if b == nil || (window == "day" && b.DayUSD == 0) || (window == "week" && b.WeekUSD == 0) {
		return ""
	}
	return " (the key's own)"
}
