package server

import (
	"context"
	"embed"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/tiers"
)

// The customer's own page (GET /usage): plain files compiled into the
// binary, like the dashboard. The page asks GET /v1/usage with the key the
// customer pastes, which it keeps in sessionStorage only: the key never
// goes into a URL, so it is in no history, log line or Referer.
//
//go:embed usagepage
var usagePageFiles embed.FS

func (s *Server) usagePageRoutes(e *gin.Engine) {
	serve := servePage(e, usagePageFiles, "usagepage", "/usage")
	e.GET("/usage", func(c *gin.Context) {
		c.Request.URL.Path = "/usage/" // the index, without a redirect
		serve(c)
	})
}

// maxCustomerDays is the most days GET /v1/usage?days=N lists (the 30-day
// window's days).
const maxCustomerDays = 30

// daysAsked reads ?days=N: asked is false when the parameter is absent;
// N is clamped to 1…maxCustomerDays.
func daysAsked(q string) (n int, asked bool) {
	if q == "" {
		return 0, false
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 {
		n = 1
	}
	return min(n, maxCustomerDays), true
}

// CustomerDay is one UTC day of a key's usage as GET /v1/usage?days=N
// lists it.
type CustomerDay struct {
	Day      string  `json:"day"`
	Requests int64   `json:"requests"`
	Tokens   int64   `json:"tokens"`
	CostUSD  float64 `json:"cost_usd"`
}

// customerDays lists the key's last n UTC days, oldest first, today last.
func (s *Server) customerDays(ctx context.Context, hash string, n int) ([]CustomerDay, error) {
	today := s.d.Clock.Now().UTC()
	days, err := s.d.Usage.KeyDays(ctx, hash, today.AddDate(0, 0, 1-n), today)
	if err != nil {
		return nil, err
	}
	out := make([]CustomerDay, 0, len(days))
	for _, d := range days {
		out = append(out, CustomerDay{Day: d.Start.Format(dayLayout), Requests: d.Totals.Requests,
			Tokens: d.Totals.Total(), CostUSD: tiers.RoundUSD(s.splitCost(d.ByFamily, d.ByModel, nil))})
	}
	return out, nil
}
