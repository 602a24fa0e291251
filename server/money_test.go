package server

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/usage"
)

// customerView reads GET /v1/usage as the customer sees it.
func customerView(t *testing.T, url, key string) (usage.Summary, CostView) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/usage", nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out struct {
		Tokens usage.Summary `json:"tokens"`
		Cost   CostView      `json:"cost_usd"`
	}
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/v1/usage %d %s", resp.StatusCode, b)
	}
	return out.Tokens, out.Cost
}

// Cost is the list price of the recorded tokens, per family; the export's
// rows for a period add up to what /v1/usage shows for the same keys.
func TestMoneyCostAndExport(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "h1")
	url := e.start()
	k1, k2 := e.issue("high"), e.issue("high")
	sends := []struct{ key, body string }{
		{k1, msgBody("claude-sonnet-4-5", false)},
		{k1, msgBody("claude-opus-4-1", true)},
		{k2, msgBody("claude-sonnet-4-5", true)},
	}
	var wantK1 float64
	for i, s := range sends {
		ans, err := fakeupstream.Reply([]byte(s.body))
		if err != nil {
			t.Fatal(err)
		}
		if s.key == k1 {
			in, out := float64(ans.Usage.InputTokens), float64(ans.Usage.OutputTokens)
			cw, cr := float64(ans.Usage.CacheCreationInputTokens), float64(ans.Usage.CacheReadInputTokens)
			if i == 0 { // sonnet list price
				wantK1 += (in*3 + out*15 + cw*3.75 + cr*0.30) / 1e6
			} else { // opus
				wantK1 += (in*15 + out*75 + cw*18.75 + cr*1.50) / 1e6
			}
		}
		if r := post(t, url, "/v1/messages", s.key, s.body); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	e.srvs[0].waitBackground()

	sum1, cost1 := customerView(t, url, k1)
	if math.Abs(cost1.Last5h-wantK1) > 2e-6 || cost1.Last24h != cost1.Last5h || cost1.Last30d != cost1.Last5h || cost1.Total != cost1.Last5h || wantK1 == 0 {
		t.Fatalf("cost %+v, want %v in every window", cost1, wantK1)
	}
	sum2, cost2 := customerView(t, url, k2)

	// The same figures in key show and the admin usage, per account and tier.
	var show struct {
		Cost CostView `json:"cost_usd"`
	}
	if st := e.admin(http.MethodGet, "/admin/api/keys/"+keyIDOf(k1), nil, &show); st != 200 || show.Cost.Total != cost1.Total || show.Cost.Last5h != cost1.Last5h {
		t.Fatalf("key show %d %+v", st, show.Cost)
	}
	var adm struct {
		Cost     CostView `json:"cost_usd"`
		Accounts []struct {
			Name string   `json:"name"`
			Cost CostView `json:"cost_usd"`
		} `json:"accounts"`
		Tiers []struct {
			Tier string   `json:"tier"`
			Cost CostView `json:"cost_usd"`
		} `json:"tiers"`
	}
	if st := e.admin(http.MethodGet, "/admin/api/usage", nil, &adm); st != 200 {
		t.Fatal(st)
	}
	both := cost1.Last30d + cost2.Last30d
	if math.Abs(adm.Cost.Last30d-both) > 2e-6 || len(adm.Accounts) != 1 || math.Abs(adm.Accounts[0].Cost.Last30d-both) > 2e-6 {
		t.Fatalf("admin usage %+v, want %v", adm, both)
	}
	for _, tc := range adm.Tiers {
		if want := map[bool]float64{true: both}[tc.Tier == "high"]; math.Abs(tc.Cost.Last30d-want) > 2e-6 {
			t.Fatalf("tier %s cost %+v, want %v", tc.Tier, tc.Cost, want)
		}
	}

	// The export over the 30 days /v1/usage's last_30d covers.
	today := time.Now().UTC()
	var ex struct {
		Rows []ExportRow `json:"rows"`
	}
	path := "/admin/api/usage/export?tier=high&since=" + today.AddDate(0, 0, -(usage.Days30-1)).Format(dayLayout) + "&until=" + today.Format(dayLayout)
	if st := e.admin(http.MethodGet, path, nil, &ex); st != 200 {
		t.Fatalf("export %d", st)
	}
	got := map[string]*ExportRow{}
	for i := range ex.Rows {
		r := ex.Rows[i]
		g := got[r.KeyID]
		if g == nil {
			g = &ExportRow{}
			got[r.KeyID] = g
		}
		g.Requests += r.Requests
		g.InputTokens += r.InputTokens
		g.OutputTokens += r.OutputTokens
		g.CacheCreationInputTokens += r.CacheCreationInputTokens
		g.CacheReadInputTokens += r.CacheReadInputTokens
		g.CostUSD += r.CostUSD
	}
	for key, v := range map[string]struct {
		sum  usage.Summary
		cost CostView
	}{k1: {sum1, cost1}, k2: {sum2, cost2}} {
		g, w := got[keyIDOf(key)], v.sum.Last30d
		if g == nil || g.Requests != w.Requests || g.InputTokens != w.InputTokens || g.OutputTokens != w.OutputTokens ||
			g.CacheCreationInputTokens != w.CacheCreationInputTokens || g.CacheReadInputTokens != w.CacheReadInputTokens ||
			math.Abs(g.CostUSD-v.cost.Last30d) > 2e-6 {
			t.Fatalf("export for %s: %+v, /v1/usage last_30d %+v cost %+v", keyIDOf(key), g, w, v.cost)
		}
	}
	for _, bad := range []string{"?since=2026-01-02&until=2026-01-01", "?since=x&until=2026-01-01", "?since=2026-01-01&until=2026-01-02&tier=nope"} {
		if st := e.admin(http.MethodGet, "/admin/api/usage/export"+bad, nil, nil); st != http.StatusBadRequest {
			t.Errorf("%s: %d", bad, st)
		}
	}
}
