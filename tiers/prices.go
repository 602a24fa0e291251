package tiers

import (
	"fmt"
	"math"
)

// Price is a model family's list price in US dollars per million tokens.
// Usage is recorded per family (the unit quotas use), so prices are too: a
// family whose models differ in price takes the price the operator sets.
type Price struct {
	Input      float64 `json:"input"`
	Output     float64 `json:"output"`
	CacheWrite float64 `json:"cache_write"`
	CacheRead  float64 `json:"cache_read"`
}

// builtinPrices are Anthropic's list prices (per million tokens) for the
// newest model of each built-in family: Opus 4.x, Sonnet 4.5, Haiku 4.5.
// Cache writes are the 5-minute rate (1.25 × input).
func builtinPrices() map[string]Price {
	return map[string]Price{
		"opus":   {Input: 15, Output: 75, CacheWrite: 18.75, CacheRead: 1.50},
		"sonnet": {Input: 3, Output: 15, CacheWrite: 3.75, CacheRead: 0.30},
		Other:    {Input: 1, Output: 5, CacheWrite: 1.25, CacheRead: 0.10},
	}
}

// Tokens are the four token counts of some usage, the input of Cost.
type Tokens struct {
	Input, Output, CacheWrite, CacheRead int64
}

// Cost is the price of tokens of family in US dollars; a family without a
// price costs nothing (ok is false so callers can say "unpriced").
func (t *Table) Cost(family string, n Tokens) (usd float64, ok bool) {
	p, ok := t.Prices[family]
	if !ok {
		return 0, false
	}
	usd = (float64(n.Input)*p.Input + float64(n.Output)*p.Output +
		float64(n.CacheWrite)*p.CacheWrite + float64(n.CacheRead)*p.CacheRead) / 1e6
	return usd, true
}

// RoundUSD rounds dollars to a millionth (one token of the cheapest kind
// costs about that), so sums of rows stay within cents of the true total.
func RoundUSD(v float64) float64 { return math.Round(v*1e6) / 1e6 }

func validatePrices(t *Table) error {
	fams := map[string]bool{Other: true}
	for _, f := range t.Families {
		fams[f.Name] = true
	}
	for name, p := range t.Prices {
		if !fams[name] {
			return invalid("prices", "unknown family %q", name)
		}
		for field, v := range map[string]float64{"input": p.Input, "output": p.Output, "cache_write": p.CacheWrite, "cache_read": p.CacheRead} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return invalid(fmt.Sprintf("prices.%s.%s", name, field), "must be a non-negative number")
			}
		}
	}
	return nil
}
