package server

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/tiers"
	"github.com/claude-route/claude-route/usage"
)

// CostView is what some usage cost at the price table's list prices, in
// US dollars, over the same windows as usage.Summary.
type CostView struct {
	Last5h  float64 `json:"last_5h"`
	Last24h float64 `json:"last_24h"`
	Last30d float64 `json:"last_30d"`
	Total   float64 `json:"total"`
	// Unpriced lists families (or models) that had traffic but no price (cost 0).
	Unpriced []string `json:"unpriced,omitempty"`
}

func tokensOf(t usage.Totals) tiers.Tokens {
	return tiers.Tokens{Input: t.InputTokens, Output: t.OutputTokens,
		CacheWrite: t.CacheCreationInputTokens, CacheRead: t.CacheReadInputTokens,
		CacheWrite1h: t.CacheCreation1hInputTokens}
}

// familiesCost prices a per-family split; unpriced families are collected.
func (s *Server) familiesCost(fams map[string]usage.Totals, unpriced map[string]bool) float64 {
	var usd float64
	for f, t := range fams {
		c, ok := s.d.Tiers.Cost(f, tokensOf(t))
		if !ok && t.Requests > 0 && unpriced != nil {
			unpriced[f] = true
		}
		usd += c
	}
	return usd
}

// splitCost prices a window split by family and by model: the traffic
// recorded with its model at the model's price, the rest of each family
// (recorded without a model) at the family's price.
func (s *Server) splitCost(fams, models map[string]usage.Totals, unpriced map[string]bool) float64 {
	if len(models) == 0 {
		return s.familiesCost(fams, unpriced)
	}
	rest := make(map[string]usage.Totals, len(fams))
	for f, t := range fams {
		rest[f] = t
	}
	var usd float64
	for m, t := range models {
		c, ok := s.d.Tiers.ModelCost(m, tokensOf(t))
		if !ok && t.Requests > 0 && unpriced != nil {
			unpriced[m] = true
		}
		usd += c
		base, _ := tiers.BaseModel(m)
		f := s.d.Tiers.FamilyOf(s.d.Tiers.Resolve(base))
		r := rest[f]
		r.Requests -= t.Requests
		r.InputTokens -= t.InputTokens
		r.OutputTokens -= t.OutputTokens
		r.CacheCreationInputTokens -= t.CacheCreationInputTokens
		r.CacheReadInputTokens -= t.CacheReadInputTokens
		r.CacheCreation1hInputTokens -= t.CacheCreation1hInputTokens
		rest[f] = r
	}
	for f, r := range rest {
		if r.Requests <= 0 && r.InputTokens <= 0 && r.OutputTokens <= 0 && r.CacheCreationInputTokens <= 0 && r.CacheReadInputTokens <= 0 {
			delete(rest, f)
		}
	}
	return usd + s.familiesCost(rest, unpriced)
}

func (s *Server) costOf(sum usage.Summary) CostView {
	un := map[string]bool{}
	v := CostView{
		Last5h:  tiers.RoundUSD(s.splitCost(sum.Families.Last5h, sum.Models.Last5h, un)),
		Last24h: tiers.RoundUSD(s.splitCost(sum.Families.Last24h, sum.Models.Last24h, un)),
		Last30d: tiers.RoundUSD(s.splitCost(sum.Families.Last30d, sum.Models.Last30d, un)),
		Total:   tiers.RoundUSD(s.splitCost(sum.ByFamily, sum.ByModel, un)),
	}
	for f := range un {
		v.Unpriced = append(v.Unpriced, f)
	}
	sort.Strings(v.Unpriced)
	return v
}

// times is c with every window multiplied by m (what a tier bills).
func (c CostView) times(m float64) CostView {
	return CostView{Last5h: tiers.RoundUSD(c.Last5h * m), Last24h: tiers.RoundUSD(c.Last24h * m),
		Last30d: tiers.RoundUSD(c.Last30d * m), Total: tiers.RoundUSD(c.Total * m)}
}

// minus is c less o, window by window (billed less cost is the margin).
func (c CostView) minus(o CostView) CostView {
	return CostView{Last5h: tiers.RoundUSD(c.Last5h - o.Last5h), Last24h: tiers.RoundUSD(c.Last24h - o.Last24h),
		Last30d: tiers.RoundUSD(c.Last30d - o.Last30d), Total: tiers.RoundUSD(c.Total - o.Total)}
}

// TierMoney is a tier's cost at list prices, what its customers are billed
// (cost × the tier's price_multiplier) and the margin between them.
type TierMoney struct {
	Tier            string   `json:"tier"`
	PriceMultiplier float64  `json:"price_multiplier"`
	Cost            CostView `json:"cost_usd"`
	Billed          CostView `json:"billed_usd"`
	Margin          CostView `json:"margin_usd"`
}

func (s *Server) tierMoney(name string, cost CostView) TierMoney {
	m := 1.0
	if tr, ok := s.d.Tiers.Get(name); ok {
		m = tr.Multiplier()
	}
	billed := cost.times(m)
	return TierMoney{Tier: name, PriceMultiplier: m, Cost: cost, Billed: billed, Margin: billed.minus(cost)}
}

func (c *CostView) add(o CostView) {
	c.Last5h = tiers.RoundUSD(c.Last5h + o.Last5h)
	c.Last24h = tiers.RoundUSD(c.Last24h + o.Last24h)
	c.Last30d = tiers.RoundUSD(c.Last30d + o.Last30d)
	c.Total = tiers.RoundUSD(c.Total + o.Total)
}

// ExportRow is one key's usage on one UTC day: the reseller's billing line.
type ExportRow struct {
	Day                      string  `json:"day"`
	KeyID                    string  `json:"key_id"`
	Tier                     string  `json:"tier"`
	Note                     string  `json:"note"`
	Requests                 int64   `json:"requests"`
	InputTokens              int64   `json:"input_tokens"`
	OutputTokens             int64   `json:"output_tokens"`
	CacheCreationInputTokens int64   `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64   `json:"cache_read_input_tokens"`
	CacheCreation1hTokens    int64   `json:"cache_creation_1h_input_tokens"`
	CostUSD                  float64 `json:"cost_usd"`
	// BilledUSD is the cost times the tier's price_multiplier; MarginUSD
	// what is left of it after the cost.
	BilledUSD float64 `json:"billed_usd"`
	MarginUSD float64 `json:"margin_usd"`
}

const dayLayout = "2006-01-02"

// adminUsageExport lists, per key and UTC day from since to until (both
// included), the requests, tokens and cost; days without requests are left
// out. Keys of every status are included: a revoked key's past use is billed.
func (s *Server) adminUsageExport(c *gin.Context) {
	ctx := c.Request.Context()
	if s.d.Usage == nil {
		adminErr(c, http.StatusNotFound, "usage accounting is not configured")
		return
	}
	since, err1 := time.Parse(dayLayout, c.Query("since"))
	until, err2 := time.Parse(dayLayout, c.Query("until"))
	if err1 != nil || err2 != nil || until.Before(since) {
		adminErr(c, http.StatusBadRequest, "since and until must be dates (YYYY-MM-DD), since not after until")
		return
	}
	if until.Sub(since) > usage.DayTTL {
		adminErr(c, http.StatusBadRequest, "the export covers at most 100 days (daily usage is kept that long)")
		return
	}
	tier := c.Query("tier")
	if tier != "" {
		if _, ok := s.d.Tiers.Get(tier); !ok {
			adminErr(c, http.StatusBadRequest, "unknown tier "+strqt(tier))
			return
		}
	}
	// The rows are streamed as they are read: keys a ledger page at a
	// time (creation order), each key's days in order. Nothing holds the
	// whole export, whatever the number of keys.
	recs, next, err := s.d.Keys.Page(ctx, keys.Filter{Tier: tier}, "", keys.MaxPage)
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "could not list keys: "+err.Error())
		return
	}
	w := c.Writer
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	head, _ := json.Marshal(since.Format(dayLayout))
	tail, _ := json.Marshal(until.Format(dayLayout))
	_, _ = w.WriteString(`{"since":` + string(head) + `,"until":` + string(tail) + `,"rows":[`)
	enc := json.NewEncoder(w)
	n := 0
	fail := func(msg string) {
		// The status is sent already: the error closes the object, and a
		// reader that checks for it knows the rows are incomplete.
		b, _ := json.Marshal(msg)
		_, _ = w.WriteString(`],"error":{"type":"` + errAPI + `","message":` + string(b) + `}}`)
	}
	for {
		for _, r := range recs {
			days, err := s.d.Usage.KeyDays(ctx, r.Hash, since, until)
			if err != nil {
				fail("store unavailable after " + strconv.Itoa(n) + " rows")
				return
			}
			for _, d := range days {
				if d.Totals.Requests == 0 {
					continue
				}
				cost := tiers.RoundUSD(s.splitCost(d.ByFamily, d.ByModel, nil))
				billed := s.tierMoney(r.Tier, CostView{Total: cost}).Billed.Total
				if n > 0 {
					_, _ = w.WriteString(",")
				}
				n++
				_ = enc.Encode(ExportRow{Day: d.Start.Format(dayLayout), KeyID: r.ID, Tier: r.Tier, Note: r.Note,
					Requests: d.Totals.Requests, InputTokens: d.Totals.InputTokens, OutputTokens: d.Totals.OutputTokens,
					CacheCreationInputTokens: d.Totals.CacheCreationInputTokens, CacheReadInputTokens: d.Totals.CacheReadInputTokens,
					CacheCreation1hTokens: d.Totals.CacheCreation1hInputTokens,
					CostUSD:               cost, BilledUSD: billed, MarginUSD: tiers.RoundUSD(billed - cost)})
			}
		}
		w.Flush()
		if next == "" {
			break
		}
		if recs, next, err = s.d.Keys.Page(ctx, keys.Filter{Tier: tier}, next, keys.MaxPage); err != nil {
			fail("could not list keys after " + strconv.Itoa(n) + " rows: " + err.Error())
			return
		}
	}
	_, _ = w.WriteString("]}")
}
