package probe

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

// A blacklisted API-key account whose key the upstream accepts again is
// recovered, with exactly one probe across two replicas; an operator's or
// an invalid_grant blacklisting is never probed.
func TestProbeRecoversOnceAcrossReplicas(t *testing.T) {
	fake := fakeupstream.Start(fakeupstream.Options{})
	defer fake.Close()
	fake.AddAPIKey("sk-a")
	clk := clock.NewFake(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	log := logrus.New()
	r1, r2 := testenv.Redis(t, 12), testenv.Redis(t, 12)
	ctx := context.Background()
	store := accounts.NewStore(r1)
	for _, a := range []accounts.Account{
		{Name: "a", Kind: accounts.APIKey, APIKey: "sk-a", Tier: "high"},
		{Name: "b", Kind: accounts.APIKey, APIKey: "sk-b", Tier: "high"},
		{Name: "c", Kind: accounts.APIKey, APIKey: "sk-a", Tier: "high"},
	} {
		if err := store.Put(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	p1 := accounts.NewPool(r1, clk, log)
	_ = p1.Blacklist(ctx, "a", "upstream 401 authentication_error: invalid x-api-key")
	_ = p1.Blacklist(ctx, "b", "upstream 401 authentication_error: invalid x-api-key")
	_ = p1.Blacklist(ctx, "c", "disabled")
	pr1 := &Prober{Pool: p1, Accounts: store, HTTP: http.DefaultClient, UpstreamURL: fake.URL(),
		Interval: 30 * time.Minute, Clock: clk, Log: log}
	pr2 := &Prober{Pool: accounts.NewPool(r2, clk, log), Accounts: accounts.NewStore(r2), HTTP: http.DefaultClient,
		UpstreamURL: fake.URL(), Interval: 30 * time.Minute, Clock: clk, Log: log}
	var mu sync.Mutex
	results := map[string]int{}
	count := func(r string) { mu.Lock(); results[r]++; mu.Unlock() }
	pr1.OnResult, pr2.OnResult = count, count
	fake.Reset()
	var wg sync.WaitGroup
	for _, p := range []*Prober{pr1, pr2} {
		wg.Add(1)
		go func(p *Prober) { defer wg.Done(); _, _ = p.Once(ctx) }(p)
	}
	wg.Wait()
	probes := 0
	for _, r := range fake.Requests() {
		if r.Path == "/v1/messages/count_tokens" {
			probes++
		}
	}
	if probes != 2 { // a and b once each; c (disabled) never
		t.Fatalf("%d probes, want one per probeable account", probes)
	}
	if results["recovered"] != 1 || results["401"] != 1 || len(results) != 2 {
		t.Fatalf("probe results counted %v, want one recovered and one 401", results)
	}
	bl, _ := p1.Blacklisted(ctx)
	if _, still := bl["a"]; still {
		t.Fatal("a answered 200 and must be recovered")
	}
	if _, still := bl["b"]; !still {
		t.Fatal("b is still rejected and must stay blacklisted")
	}
	view, _ := p1.View(ctx, []string{"high"}, func(string) int { return 3 })
	for _, a := range view["high"] {
		if a.Name == "b" && (a.LastProbe == nil || a.LastProbe.Result != "401") {
			t.Fatalf("b's probe must show in pool: %+v", a.LastProbe)
		}
	}
	// Same interval: no second probe.
	fake.Reset()
	_, _ = pr1.Once(ctx)
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("%d probes within the same interval", n)
	}
	// Next interval: b is probed again.
	clk.Advance(30 * time.Minute)
	_, _ = pr2.Once(ctx)
	if n := len(fake.Requests()); n != 1 {
		t.Fatalf("next interval: %d probes", n)
	}
}

// Check says what one count_tokens with the account's credential found:
// the status, the upstream's error type, or that nothing answered; never
// the credential.
func TestCheck(t *testing.T) {
	fake := fakeupstream.Start(fakeupstream.Options{})
	defer fake.Close()
	fake.AddAPIKey("sk-ant-api03-good")
	dead := fakeupstream.Start(fakeupstream.Options{})
	deadURL := dead.URL()
	dead.Close()
	ctx := context.Background()
	for _, c := range []struct {
		name      string
		a         accounts.Account
		status    int
		errorType string
	}{
		{"working key", accounts.Account{Kind: accounts.APIKey, APIKey: "sk-ant-api03-good"}, 200, ""},
		{"rejected key", accounts.Account{Kind: accounts.APIKey, APIKey: "sk-ant-api03-bad"}, 401, "authentication_error"},
		{"rejected token", accounts.Account{Kind: accounts.OAuth, AccessToken: "sk-ant-oat01-bad"}, 401, "authentication_error"},
		{"nothing answers", accounts.Account{Kind: accounts.APIKey, APIKey: "sk-ant-api03-good", BaseURLs: []string{deadURL}}, 0, "unreachable"},
	} {
		r := Check(ctx, http.DefaultClient, fake.URL(), c.a)
		if r.Status != c.status || r.ErrorType != c.errorType || r.OK() != (c.status == 200) {
			t.Errorf("%s: %+v, want %d %q", c.name, r, c.status, c.errorType)
		}
		if c.a.Credential() != "" && (strings.Contains(r.Message, c.a.Credential()) || strings.Contains(r.ErrorType, c.a.Credential())) {
			t.Errorf("%s: the result shows the credential: %+v", c.name, r)
		}
	}
}
