package tiers

import (
	"fmt"
	"math"
	"strings"
)

// Price is a list price in US dollars per million tokens, of a model or,
// as the fallback for models without their own, of a model family.
type Price struct {
	Input  float64 `json:"input"`
	Output float64 `json:"output"`
	// CacheWrite is the 5-minute cache write (1.25 × input on the list).
	CacheWrite float64 `json:"cache_write"`
	// CacheWrite1h is the 1-hour cache write; 0 or absent means 2 × input,
	// the list's rule.
	CacheWrite1h float64 `json:"cache_write_1h,omitempty"`
	CacheRead    float64 `json:"cache_read"`
	// LongContext, when set, is the price of a request of this model whose
	// input (input, cache writes and cache reads together) exceeds
	// LongContextTokens: the models that offer a 1M-token context bill such
	// a request whole at these rates.
	LongContext *Price `json:"long_context,omitempty"`
}

// LongContextTokens is the input size above which a request of a model
// with a long-context price is billed at it.
const LongContextTokens = 200_000

// LongSuffix marks a model's usage recorded at its long-context price: the
// usage of "claude-sonnet-4-5" requests over LongContextTokens is kept
// under "claude-sonnet-4-5 >200k", so every window prices it apart.
const LongSuffix = " >200k"

// BaseModel is model without LongSuffix; long reports whether it had it.
func BaseModel(model string) (base string, long bool) {
	base, long = strings.CutSuffix(model, LongSuffix)
	return base, long
}

// UsageModel is the name a request's usage is recorded under: the model,
// or the model with LongSuffix when its input (all four input kinds, as
// the bill counts them) exceeds LongContextTokens and the model has a
// long-context price.
func (t *Table) UsageModel(model string, input int64) string {
	if input <= LongContextTokens || model == "" {
		return model
	}
	if p, ok := t.PriceOf(model); ok && p.LongContext != nil {
		return model + LongSuffix
	}
	return model
}

func (p Price) write1h() float64 {
	if p.CacheWrite1h > 0 {
		return p.CacheWrite1h
	}
	return 2 * p.Input
}

// builtinPrices are Anthropic's list prices (per million tokens) for the
// newest model of each built-in family: Opus 4.x, Sonnet 4.5, Haiku 4.5.
// Cache writes are the 5-minute rate (1.25 × input); 1-hour writes are 2 × input.
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
	// Sonnet 4 and 4.5 offer a 1M-token context; a request over 200k
	// input tokens is billed at these rates.
	sonnet1m := sonnet
	sonnet1m.LongContext = &Price{Input: 6, Output: 22.50, CacheWrite: 7.50, CacheWrite1h: 12, CacheRead: 0.60}
	return map[string]Price{
		"claude-opus-4-5":   {Input: 5, Output: 25, CacheWrite: 6.25, CacheRead: 0.50},
		"claude-opus-4-1":   opus4,
		"claude-opus-4":     opus4,
		"claude-opus-4-0":   opus4,
		"claude-3-opus":     opus4,
		"claude-sonnet-4-5": sonnet1m,
		"claude-sonnet-4":   sonnet1m,
		"claude-sonnet-4-0": sonnet1m,
		"claude-3-7-sonnet": sonnet,
		"claude-3-5-sonnet": sonnet,
		"claude-haiku-4-5":  {Input: 1, Output: 5, CacheWrite: 1.25, CacheRead: 0.10},
		"claude-3-5-haiku":  {Input: 0.80, Output: 4, CacheWrite: 1, CacheRead: 0.08},
		"claude-3-haiku":    {Input: 0.25, Output: 1.25, CacheWrite: 0.30, CacheRead: 0.03},
	}
}

// PriceOf is the price of one model: its own (exact name, else the longest
// listed name it extends with "-…"), else its family's. ok is false when
// neither has a price. A model name with LongSuffix takes the model's
// long-context price (its plain price when it has none).
func (t *Table) PriceOf(model string) (p Price, ok bool) {
	base, long := BaseModel(model)
	p, ok = t.basePriceOf(base)
	if long && ok && p.LongContext != nil {
		return *p.LongContext, true
	}
	return p, ok
}

func (t *Table) basePriceOf(model string) (p Price, ok bool) {
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
	w1h := min(max(n.CacheWrite1h, 0), n.CacheWrite)
	return (float64(n.Input)*p.Input + float64(n.Output)*p.Output +
		float64(n.CacheWrite-w1h)*p.CacheWrite + float64(w1h)*p.write1h() +
		float64(n.CacheRead)*p.CacheRead) / 1e6
}

// Tokens are the token counts of some usage, the input of Cost.
// CacheWrite counts every cache write; CacheWrite1h is the part of it
// written with the 1-hour TTL.
type Tokens struct {
	Input, Output, CacheWrite, CacheRead, CacheWrite1h int64
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
	if p.LongContext != nil {
		if p.LongContext.LongContext != nil {
			return invalid(field+".long_context", "must not have a long_context of its own")
		}
		if err := validatePrice(field+".long_context", *p.LongContext); err != nil {
			return err
		}
	}
	for f, v := range map[string]float64{"input": p.Input, "output": p.Output, "cache_write": p.CacheWrite, "cache_write_1h": p.CacheWrite1h, "cache_read": p.CacheRead} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return invalid(fmt.Sprintf("%s.%s", field, f), "must be a non-negative number")
		}
	}
	return nil
}
