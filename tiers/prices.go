package tiers

import (
	"fmt"
	"math"
	"strings"
)

// Price is a list price in US dollars per million tokens, of a model or,
// as the fallback for models without their own, of a model family.
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

// builtinModelPrices are Anthropic's list prices per model (per million
// tokens; cache writes at the 5-minute rate, 1.25 × input; cache reads
// 0.1 × input). Keys are model names without their date: a dated model
// takes the price of the longest key it extends ("claude-opus-4" prices
// "claude-opus-4-20250514", "claude-opus-4-5" prices "claude-opus-4-5-20251101").
func builtinModelPrices() map[string]Price {
	opus4 := Price{Input: 15, Output: 75, CacheWrite: 18.75, CacheRead: 1.50}
	sonnet := Price{Input: 3, Output: 15, CacheWrite: 3.75, CacheRead: 0.30}
	return map[string]Price{
		"claude-opus-4-5":   {Input: 5, Output: 25, CacheWrite: 6.25, CacheRead: 0.50},
		"claude-opus-4-1":   opus4,
		"claude-opus-4":     opus4,
		"claude-opus-4-0":   opus4,
		"claude-3-opus":     opus4,
		"claude-sonnet-4-5": sonnet,
		"claude-sonnet-4":   sonnet,
		"claude-sonnet-4-0": sonnet,
		"claude-3-7-sonnet": sonnet,
		"claude-3-5-sonnet": sonnet,
		"claude-haiku-4-5":  {Input: 1, Output: 5, CacheWrite: 1.25, CacheRead: 0.10},
		"claude-3-5-haiku":  {Input: 0.80, Output: 4, CacheWrite: 1, CacheRead: 0.08},
		"claude-3-haiku":    {Input: 0.25, Output: 1.25, CacheWrite: 0.30, CacheRead: 0.03},
	}
}

// PriceOf is the price of one model: its own (exact name, else the longest
// listed name it extends with "-…"), else its family's. ok is false when
// neither has a price.
func (t *Table) PriceOf(model string) (p Price, ok bool) {
	m := strings.ToLower(t.Resolve(model))
	if p, ok := t.ModelPrices[m]; ok {
		return p, true
	}
	best := ""
	for name := range t.ModelPrices {
		n := strings.ToLower(name)
		if len(n) > len(best) && strings.HasPrefix(m, n+"-") {
			best = name
		}
	}
	if best != "" {
		return t.ModelPrices[best], true
	}
	p, ok = t.Prices[t.FamilyOf(m)]
	return p, ok
}

// ModelCost is the price of tokens of one model in US dollars (see PriceOf).
func (t *Table) ModelCost(model string, n Tokens) (usd float64, ok bool) {
	p, ok := t.PriceOf(model)
	if !ok {
		return 0, false
	}
	return p.cost(n), true
}

func (p Price) cost(n Tokens) float64 {
	return (float64(n.Input)*p.Input + float64(n.Output)*p.Output +
		float64(n.CacheWrite)*p.CacheWrite + float64(n.CacheRead)*p.CacheRead) / 1e6
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
	return p.cost(n), true
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
		if err := validatePrice("prices."+name, p); err != nil {
			return err
		}
	}
	for name, p := range t.ModelPrices {
		if strings.TrimSpace(name) == "" {
			return invalid("model_prices", "model names must not be empty")
		}
		if err := validatePrice("model_prices."+name, p); err != nil {
			return err
		}
	}
	return nil
}

func validatePrice(field string, p Price) error {
	for f, v := range map[string]float64{"input": p.Input, "output": p.Output, "cache_write": p.CacheWrite, "cache_read": p.CacheRead} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return invalid(fmt.Sprintf("%s.%s", field, f), "must be a non-negative number")
		}
	}
	return nil
}
