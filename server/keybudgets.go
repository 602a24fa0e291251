package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/keys"
)

// BudgetsIn is a key's own budgets as the admin API takes and shows them:
// USD per UTC day and week; an absent or 0 window keeps the tier's.
type BudgetsIn struct {
	DayUSD  float64 `json:"day_usd,omitempty"`
	WeekUSD float64 `json:"week_usd,omitempty"`
}

func (b *BudgetsIn) budgets() keys.Budgets {
	if b == nil {
		return keys.Budgets{}
	}
	return keys.Budgets{DayUSD: b.DayUSD, WeekUSD: b.WeekUSD}
}

// ownBudgets is the key's own budgets for KeyView (nil: the tier's).
func ownBudgets(b keys.Budgets) *BudgetsIn {
	if b.IsZero() {
		return nil
	}
	return &BudgetsIn{DayUSD: b.DayUSD, WeekUSD: b.WeekUSD}
}

// checkBudgetsIn refuses budgets the key store would refuse, before any
// key is issued.
func checkBudgetsIn(c *gin.Context, b *BudgetsIn) bool {
	if err := b.budgets().Check(); err != nil {
		adminErr(c, http.StatusBadRequest, "budgets: each of day_usd and week_usd must be 0 (the tier's) or a positive amount of USD")
		return false
	}
	return true
}

// adminBudgetKey replaces a key's own budgets: {"day_usd": X, "week_usd":
// Y}; a window absent or 0 goes back to the tier's. It is ledgered, and
// (as every change under /keys/:ref) holds on every replica once answered.
func (s *Server) adminBudgetKey(c *gin.Context) {
	ctx := c.Request.Context()
	var in BudgetsIn
	if err := c.ShouldBindJSON(&in); err != nil {
		adminErr(c, http.StatusBadRequest, `body must be {"day_usd": USD, "week_usd": USD} (0 or absent: the tier's)`)
		return
	}
	if !checkBudgetsIn(c, &in) {
		return
	}
	rec, err := s.d.Keys.SetBudgets(ctx, c.Param("ref"), in.budgets())
	if err != nil {
		s.lifecycleErr(c, err)
		return
	}
	s.log.WithFields(map[string]any{"key": rec.ID, "day_usd": in.DayUSD, "week_usd": in.WeekUSD}).Info("key budgets set")
	s.keyAnswer(c, ctx, rec)
}
