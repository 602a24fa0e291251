package tiers

import "math"

// ValidityFromFirstUse starts a key's validity at its first successful
// request instead of at its issue.
const ValidityFromFirstUse = "first_use"

// Budgets are spending caps in list-price US dollars (the cost the price
// table computes, before any price_multiplier); 0 or absent is no cap.
type Budgets struct {
	DayUSD  float64 `json:"day_usd,omitempty"`
	WeekUSD float64 `json:"week_usd,omitempty"`
}

// IsZero reports whether b caps nothing.
func (b *Budgets) IsZero() bool { return b == nil || (b.DayUSD == 0 && b.WeekUSD == 0) }

// Validate names the first field that is not a non-negative number.
func (b *Budgets) Validate(field string) error {
	if b == nil {
		return nil
	}
	for f, v := range map[string]float64{"day_usd": b.DayUSD, "week_usd": b.WeekUSD} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return invalid(field+"."+f, "must be a non-negative number")
		}
	}
	return nil
}

// Multiplier is the tier's price multiplier (1 when unset).
func (tr *Tier) Multiplier() float64 {
	if tr.PriceMultiplier <= 0 {
		return 1
	}
	return tr.PriceMultiplier
}

// FromFirstUse reports whether the tier's keys start their validity at
// their first use.
func (tr *Tier) FromFirstUse() bool { return tr.ValidityFrom == ValidityFromFirstUse }

func (tr *Tier) validateSelling(field string) error {
	m := tr.PriceMultiplier
	if m < 0 || math.IsNaN(m) || math.IsInf(m, 0) {
		return invalid(field+".price_multiplier", "must be a positive number")
	}
	switch tr.ValidityFrom {
	case "", "issue", ValidityFromFirstUse:
	default:
		return invalid(field+".validity_from", "must be \"issue\" or \"first_use\", not %q", tr.ValidityFrom)
	}
	return tr.Budgets.Validate(field + ".budgets")
}
