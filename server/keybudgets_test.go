package server

import (
	"math"
	"net/http"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/tiers"
)

// A key's own budgets override its tier's window by window: given at issue
// (admin API field budgets) and changed later (POST /keys/:ref/budgets),
// shown in key show and /v1/usage, used by admission on every replica, and
// kept across a FLUSHALL and sync (the ledger holds them).
func TestKeyBudgetOverride(t *testing.T) {
	e := newEnv(t)
	body := msgBody("claude-sonnet-4-5-20250929", false)
	per := sonnetCost(t, body)
	trial, _ := e.tiers.Get("trial")
	// The tier allows ten answers a day; the key's own budget one and a half.
	trial.Budgets = &tiers.Budgets{DayUSD: 10.5 * per, WeekUSD: 100}
	e.apiAccount("trial", "t1")
	u1, u2 := e.start(), e.start()

	var issued struct {
		Key    string  `json:"key"`
		Record KeyView `json:"record"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys", map[string]any{"tier": "trial", "budgets": map[string]any{"day_usd": 1.5 * per}}, &issued); st != http.StatusCreated {
		t.Fatalf("issue with budgets: %d", st)
	}
	if b := issued.Record.Budgets; b == nil || b.DayUSD != 1.5*per || b.WeekUSD != 0 {
		t.Fatalf("issued key's budgets %+v, want its own day budget", b)
	}
	key, id := issued.Key, issued.Record.ID
	wait := func() {
		for _, s := range e.srvs {
			s.waitBackground()
		}
	}
	usageBudgets := func(u string) []BudgetView {
		t.Helper()
		var cu struct {
			Budgets []BudgetView `json:"budgets"`
		}
		customerJSON(t, u, key, &cu)
		return cu.Budgets
	}
	// The day window is the key's, the week window still the tier's.
	if bv := usageBudgets(u1); len(bv) != 2 || bv[0].BudgetUSD != 1.5*per || bv[1].BudgetUSD != 100 {
		t.Fatalf("/v1/usage budgets %+v, want day %v (the key's) and week 100 (the tier's)", bv, 1.5*per)
	}

	// The tier's budget would allow ten; the key's refuses the third.
	for i, u := range []string{u1, u2} {
		if r := post(t, u, "/v1/messages", key, body); r.status != http.StatusOK {
			t.Fatalf("request %d within the key's budget: %d %s", i+1, r.status, r.body)
		}
		wait()
	}
	for _, u := range []string{u1, u2} {
		if r := post(t, u, "/v1/messages", key, body); r.status != http.StatusTooManyRequests || r.header.Get("X-Should-Retry") != "false" {
			t.Fatalf("over the key's own budget on %s: %d %s", u, r.status, r.body)
		}
	}

	// Raised later: admitted again at once on both replicas.
	var changed struct {
		Key KeyView `json:"key"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/budgets", map[string]any{"day_usd": 3.5 * per, "week_usd": 50}, &changed); st != http.StatusOK {
		t.Fatalf("set budgets: %d", st)
	}
	if b := changed.Key.Budgets; b == nil || b.DayUSD != 3.5*per || b.WeekUSD != 50 {
		t.Fatalf("answer of the change: %+v", b)
	}
	if r := post(t, u2, "/v1/messages", key, body); r.status != http.StatusOK {
		t.Fatalf("after raising the key's budget: %d %s", r.status, r.body)
	}
	wait()

	// FLUSHALL and sync: the budgets come back from the ledger (the spend,
	// kept in the store, starts afresh).
	e.ledgerFlush()
	testenv.Flush(t, e.rdb())
	e.sync()
	var show struct {
		Key     KeyView      `json:"key"`
		Budgets []BudgetView `json:"budgets"`
	}
	if st := e.admin(http.MethodGet, "/admin/api/keys/"+id, nil, &show); st != http.StatusOK {
		t.Fatalf("key show after flush: %d", st)
	}
	if b := show.Key.Budgets; b == nil || b.DayUSD != 3.5*per || b.WeekUSD != 50 {
		t.Fatalf("key budgets after flush and sync: %+v", b)
	}
	if len(show.Budgets) != 2 || show.Budgets[0].BudgetUSD != 3.5*per || show.Budgets[1].BudgetUSD != 50 || math.Abs(show.Budgets[0].SpentUSD) > 1e-9 {
		t.Fatalf("key show budgets after flush and sync: %+v", show.Budgets)
	}
	for i := range 4 { // 4 × per reaches 3.5 × per
		if r := post(t, u1, "/v1/messages", key, body); r.status != http.StatusOK {
			t.Fatalf("request %d after the flush: %d %s", i+1, r.status, r.body)
		}
		wait()
	}
	if r := post(t, u2, "/v1/messages", key, body); r.status != http.StatusTooManyRequests {
		t.Fatalf("the key's budget after a flush: %d, want 429", r.status)
	}

	// Back to the tier's: a zero window clears the key's own.
	var cleared struct {
		Key KeyView `json:"key"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/budgets", map[string]any{}, &cleared); st != http.StatusOK || cleared.Key.Budgets != nil {
		t.Fatalf("clear budgets: %d %+v", st, cleared.Key.Budgets)
	}
	if bv := usageBudgets(u2); len(bv) != 2 || bv[0].BudgetUSD != 10.5*per || bv[1].BudgetUSD != 100 {
		t.Fatalf("/v1/usage budgets after clearing %+v, want the tier's", bv)
	}
	for _, bad := range []map[string]any{{"day_usd": -1}, {"week_usd": "x"}} {
		if st := e.admin(http.MethodPost, "/admin/api/keys/"+id+"/budgets", bad, nil); st != http.StatusBadRequest {
			t.Errorf("budgets %v: %d, want 400", bad, st)
		}
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys", map[string]any{"tier": "trial", "budgets": map[string]any{"day_usd": -2}}, nil); st != http.StatusBadRequest {
		t.Errorf("issue with a negative budget: %d, want 400", st)
	}
}
