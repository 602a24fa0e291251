package server

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/tiers"
)

// A money budget refuses a key once the window's spend reaches it, exactly
// across two instances on one store: what one instance's answers cost is
// what the other checks at the next request. The refusal is a 429 naming
// the budget and its reset, with x-should-retry: false; /v1/usage shows
// spent against budget.
func TestBudgetRefusalAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	body := msgBody("claude-sonnet-4-5-20250929", false)
	per := sonnetCost(t, body) // the list price of one answer
	trial, _ := e.tiers.Get("trial")
	// Room for three answers: the spend after three (3 × per) is still
	// below 3.5 × per, after four it is not.
	trial.Budgets = &tiers.Budgets{DayUSD: 3.5 * per, WeekUSD: 100}
	e.apiAccount("trial", "t1")
	u1, u2 := e.start(), e.start()
	key := e.issue("trial")
	wait := func() {
		for _, s := range e.srvs {
			s.waitBackground() // the spend is added after each answer
		}
	}
	for i, u := range []string{u1, u2, u1, u2} {
		if r := post(t, u, "/v1/messages", key, body); r.status != http.StatusOK {
			t.Fatalf("request %d within the budget: %d %s", i+1, r.status, r.body)
		}
		wait()
	}
	// Four answers spent 4 × per ≥ 3.5 × per: each instance refuses now.
	for _, u := range []string{u1, u2} {
		r := post(t, u, "/v1/messages", key, body)
		if r.status != http.StatusTooManyRequests || r.header.Get("X-Should-Retry") != "false" || r.header.Get("Retry-After") == "" ||
			!strings.Contains(r.errMessage(), "Budget exceeded: this key's daily budget of $") || !strings.Contains(r.errMessage(), "it resets at") {
			t.Fatalf("over budget: %d %q %v", r.status, r.errMessage(), r.header)
		}
	}
	if n := len(e.fake.Requests()); n != 4 {
		t.Fatalf("the upstream saw %d requests, want 4 (refusals never reach it)", n)
	}
	var cu struct {
		Budgets []BudgetView `json:"budgets"`
	}
	customerJSON(t, u2, key, &cu)
	if len(cu.Budgets) != 2 || cu.Budgets[0].Window != "day" || math.Abs(cu.Budgets[0].SpentUSD-4*per) > 4e-6 ||
		cu.Budgets[0].BudgetUSD != 3.5*per || cu.Budgets[1].Window != "week" || cu.Budgets[0].Reset.IsZero() {
		t.Fatalf("/v1/usage budgets %+v, want day %v of %v", cu.Budgets, 4*per, 3.5*per)
	}
	var show map[string]json.RawMessage
	if st := e.admin(http.MethodGet, "/admin/api/keys/"+keyIDOf(key), nil, &show); st != 200 || !strings.Contains(string(show["budgets"]), `"window":"day"`) {
		t.Fatalf("key show budgets: %d %s", st, show["budgets"])
	}
	// A key of a tier without budgets spends freely and shows none.
	e.apiAccount("high", "h1")
	e.sync()
	free := e.issue("high")
	if r := post(t, u1, "/v1/messages", free, body); r.status != 200 {
		t.Fatalf("no budget: %d", r.status)
	}
	var none map[string]json.RawMessage
	customerJSON(t, u1, free, &none)
	if _, ok := none["budgets"]; ok {
		t.Fatalf("budgets shown for a key without any: %s", none["budgets"])
	}
}
