package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/keys"
)

// tierStock is what a tier has sold: its active keys, and how many of them
// are not bound to an account yet.
type tierStock struct{ sold, unbound int }

// stock counts every tier's sold and unbound keys from the ledger's records
// (in memory on this replica) and the pool's bindings: a key sold but not
// bound takes a free slot at its first use, so more unbound keys than free
// slots means some customer will be told the tier is at capacity.
func (s *Server) stock(ctx context.Context) (map[string]tierStock, error) {
	bound, err := s.d.Pool.Bindings(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]tierStock{}
	// Counted in place (no page copies): a bulk issue counts before each
	// batch, and its time must not grow with the ledger.
	err = s.d.Keys.Each(ctx, keys.Filter{Status: keys.StatusActive}, func(r keys.Record) {
		st := out[r.Tier]
		st.sold++
		if _, ok := bound[r.Hash]; !ok {
			st.unbound++
		}
		out[r.Tier] = st
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sellingWarning says why issuing n more keys of tier oversells it, or ""
// when every unbound key (the new ones too) still has a free slot.
func (s *Server) sellingWarning(ctx context.Context, tier string, n int) (string, error) {
	data, err := s.poolData(ctx, tier)
	if err != nil {
		return "", err
	}
	if len(data) != 1 {
		return "", fmt.Errorf("no tier %q", tier)
	}
	pt := data[0]
	unbound := pt.UnboundKeys + n
	switch {
	case pt.FreeSlots == 0:
		return fmt.Sprintf("tier %s is full (%d/%d slots in service used): a new key gets 503 at its first request until a slot frees or an account is added",
			tier, pt.SlotsUsed, pt.SlotsTotal), nil
	case unbound > pt.FreeSlots:
		return fmt.Sprintf("tier %s would have %d keys not yet bound for %d free slots: %d of them gets 503 at its first request unless a slot frees; add accounts or sell fewer",
			tier, unbound, pt.FreeSlots, unbound-pt.FreeSlots), nil
	}
	return "", nil
}

// checkSelling finds the oversell warning for issuing n unbound keys of
// tier. With strict it answers 409 and ok is false when there is one. A
// store error is no reason to refuse a sale: the key is issued without a
// warning.
func (s *Server) checkSelling(c *gin.Context, tier string, n int, strict bool) (warning string, ok bool) {
	w, err := s.sellingWarning(c.Request.Context(), tier, n)
	if err != nil {
		s.log.WithError(err).Warn("could not check the tier's free slots before issuing")
		return "", true
	}
	if w != "" && strict {
		adminErr(c, http.StatusConflict, "not issued (strict): "+w)
		return "", false
	}
	return w, true
}
