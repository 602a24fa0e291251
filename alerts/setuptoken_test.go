package alerts

import (
	"context"
	"testing"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
)

type onePool map[string][]accounts.AccountView

func (p onePool) ViewSlots(context.Context, []string, func(string) int) (map[string][]accounts.AccountView, error) {
	return p, nil
}

type lister []accounts.Account

func (l lister) All(context.Context) ([]accounts.Account, error) { return l, nil }

// A setup token (no refresh token) raises one alert when it comes within
// a week of its expiry; an OAuth account that refreshes itself never does.
func TestSetupTokenExpiryAlert(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := clock.NewFake(now)
	exp := now.Add(10 * 24 * time.Hour)
	w := &Watcher{Pool: onePool{"high": {{Name: "s1", Tier: "high"}, {Name: "o1", Tier: "high"}}},
		Tiers: func() []string { return []string{"high"} }, SlotsOf: func(string) int { return 5 }, Clock: clk,
		Accounts: lister{
			{Name: "s1", Tier: "high", Kind: accounts.OAuth, AccessToken: "sk-ant-oat01-setup", ExpiresAt: exp},
			{Name: "o1", Tier: "high", Kind: accounts.OAuth, AccessToken: "sk-ant-oat01-a", RefreshToken: "sk-ant-ort01-r", ExpiresAt: now.Add(time.Hour)},
		}}
	ctx := context.Background()
	prev, err := w.read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * 24 * time.Hour) // 8 days left: not yet
	cur, _ := w.read(ctx)
	if evs := diff(prev, cur); len(evs) != 0 {
		t.Fatalf("8 days before expiry: %+v", evs)
	}
	clk.Advance(24*time.Hour + time.Second) // under a week left
	next, _ := w.read(ctx)
	evs := diff(cur, next)
	if len(evs) != 1 || evs[0].Event != SetupTokenExpiring || evs[0].Account != "s1" || evs[0].Tier != "high" {
		t.Fatalf("a week before expiry: %+v", evs)
	}
	clk.Advance(time.Hour)
	again, _ := w.read(ctx)
	if evs := diff(next, again); len(evs) != 0 {
		t.Fatalf("the alert repeats: %+v", evs)
	}
}
