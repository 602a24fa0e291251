package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

// served counts the fake's /v1/messages requests per credential.
func (e *env) served() map[string]int {
	out := map[string]int{}
	for _, r := range e.fake.Requests() {
		if r.Path == "/v1/messages" {
			out[r.Credential]++
		}
	}
	return out
}

// boundTo is the account `key show` names for key.
func (e *env) boundTo(key string) string {
	e.t.Helper()
	var out struct{ Key KeyView }
	if st := e.admin(http.MethodGet, "/admin/api/keys/"+keyIDOf(key), nil, &out); st != http.StatusOK {
		e.t.Fatalf("key show: %d", st)
	}
	return out.Key.Account
}

func (e *env) poolAccount(tier, name string) AccountView {
	e.t.Helper()
	var pool struct{ Tiers []PoolTier }
	if st := e.admin(http.MethodGet, "/admin/api/pool?tier="+tier, nil, &pool); st != http.StatusOK {
		e.t.Fatalf("pool: %d", st)
	}
	for _, t := range pool.Tiers {
		for _, a := range t.Accounts {
			if a.Name == name {
				return a
			}
		}
	}
	e.t.Fatalf("account %s not in pool %+v", name, pool)
	return AccountView{}
}

// Key K bound to A; A answers a rejected 429: the customer gets 200 from
// B, K stays bound to A, the pool shows A limited until the reset, and
// once the clock passes the reset K is served by A again.
func TestRejected429OverflowsAndReturnsAfterReset(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk))
	ka := e.apiAccount("high", "a1")
	kb := e.apiAccount("high", "b1")
	u1, u2 := e.start(), e.start()
	key := e.issue("high", "a1")
	reset := clk.Now().Add(time.Hour)
	e.fake.RejectLimit(ka, reset, 1)
	r := post(t, u1, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != 200 {
		t.Fatalf("rejected 429 must overflow: %d %s", r.status, r.body)
	}
	if got := e.served(); got[ka] != 1 || got[kb] != 1 {
		t.Fatalf("upstream calls %v: want one to a1 (rejected), one to b1", got)
	}
	if b := e.boundTo(key); b != "a1" {
		t.Fatalf("key show says %s: an overflow must not move the binding", b)
	}
	a := e.poolAccount("high", "a1")
	if a.LimitedTill == nil || a.LimitedTill.Unix() != reset.Unix() {
		t.Fatalf("pool must show a1 limited until %s: %+v", reset, a.LimitedTill)
	}
	if !strings.Contains(e.logs.String(), "overflow") || !strings.Contains(e.logs.String(), "from=a1") ||
		!strings.Contains(e.logs.String(), "to=b1") || !strings.Contains(e.logs.String(), "reason=rejected") {
		t.Fatalf("one log line per overflow (key, from, to, reason):\n%s", e.logs.String())
	}
	// While limited, the other instance goes to B without calling A.
	if r := post(t, u2, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("while limited: %d %s", r.status, r.body)
	}
	if got := e.served(); got[ka] != 1 || got[kb] != 2 {
		t.Fatalf("a limited account must not be called: %v", got)
	}
	if m := scrape(t, u1); !strings.Contains(m, `claude_route_overflow_total{reason="rejected",tier="high"} 1`) {
		t.Fatalf("overflow counter missing:\n%s", grepLines(m, "overflow"))
	}
	clk.Set(reset.Add(time.Second))
	if r := post(t, u2, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("after the reset: %d %s", r.status, r.body)
	}
	if got := e.served(); got[ka] != 2 {
		t.Fatalf("after the reset the key goes back to its own account: %v", got)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A answers 529 three times, to requests of two keys: each request is
// served by B, A cools down and is skipped meanwhile, and serves again once
// the cooldown ends.
func TestOverloadedAccountCoolsAndComesBack(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk))
	ka := e.apiAccount("high", "a1")
	kb := e.apiAccount("high", "b1")
	urls := []string{e.start(), e.start()}
	key := e.issue("high", "a1")
	other := e.issue("high", "a1")
	e.fake.Overload(ka, 3)
	for i, k := range []string{key, other, key} {
		if r := post(t, urls[i%2], "/v1/messages", k, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
			t.Fatalf("529 %d must overflow: %d %s", i+1, r.status, r.body)
		}
	}
	if got := e.served(); got[ka] != 3 || got[kb] != 3 {
		t.Fatalf("upstream calls %v", got)
	}
	if a := e.poolAccount("high", "a1"); a.CoolingTill == nil || a.Blacklist != nil {
		t.Fatalf("a1 must cool (never blacklist) after 3 failures: %+v", a)
	}
	if r := post(t, urls[1], "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("while cooling: %d", r.status)
	}
	if got := e.served(); got[ka] != 3 || got[kb] != 4 {
		t.Fatalf("a cooling account must not be called: %v", got)
	}
	clk.Advance(61 * time.Second)
	if r := post(t, urls[0], "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("after cooling: %d", r.status)
	}
	if got := e.served(); got[ka] != 4 {
		t.Fatalf("after the cooldown the key goes back to a1: %v", got)
	}
	if b := e.boundTo(key); b != "a1" {
		t.Fatalf("binding moved to %s", b)
	}
}

// A revoked OAuth token (403 "OAuth token has been revoked…") is a dead
// credential: blacklisted, the key rebound, and the customer served.
func TestRevokedTokenBlacklistsAndRebinds(t *testing.T) {
	e := newEnv(t)
	accessA, _ := e.oauthAccount("high", "o1", time.Now().Add(8*time.Hour))
	e.oauthAccount("high", "o2", time.Now().Add(8*time.Hour))
	u1, _ := e.start(), e.start()
	key := e.issue("high", "o1")
	e.fake.RevokeWith403(accessA)
	r := post(t, u1, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != 200 {
		t.Fatalf("customer must be served after a revoked token: %d %s", r.status, r.body)
	}
	a := e.poolAccount("high", "o1")
	if a.Blacklist == nil || !strings.Contains(a.Blacklist.Reason, "revoked") {
		t.Fatalf("o1 must be blacklisted as revoked: %+v", a.Blacklist)
	}
	if b := e.boundTo(key); b != "o2" {
		t.Fatalf("key must be rebound to o2, is on %s", b)
	}
}

// The customer's echo of the revoked-token text later in a message does
// not blacklist anything: only the start of the upstream's message counts.
func TestRevokedTextMustLeadTheMessage(t *testing.T) {
	for _, c := range []struct {
		msg  string
		dead bool
	}{
		{"OAuth token has been revoked. Please obtain a new token.", true},
		{"invalid beta: 'OAuth token has been revoked'", false},
	} {
		e := newEnv(t)
		e.apiAccount("high", "a1")
		e.apiAccount("high", "b1")
		u := e.start()
		key := e.issue("high", "a1")
		e.fake.InjectFault("", fakeupstream.Fault{Status: 403, ErrorType: "permission_error", Message: c.msg})
		post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
		if got := e.poolAccount("high", "a1").Blacklist != nil; got != c.dead {
			t.Fatalf("%q: blacklisted %v, want %v", c.msg, got, c.dead)
		}
	}
}

// Utilization read from the fake's headers shows in the pool (JSON) and
// /metrics.
func TestUtilizationFromUpstreamHeaders(t *testing.T) {
	e := newEnv(t)
	access, _ := e.oauthAccount("high", "o1", time.Now().Add(8*time.Hour))
	u1, u2 := e.start(), e.start()
	key := e.issue("high")
	// Issue 24: the last answer before a flush is what is written
	// (trailing edge), not the first of the interval.
	e.fake.SetUtilization(access, 0.1, 0.05)
	if r := post(t, u1, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatal(r.status)
	}
	e.fake.SetUtilization(access, 0.5, 0.25)
	if r := post(t, u1, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatal(r.status)
	}
	if err := e.apps[0].Util.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	u := e.poolAccount("high", "o1").Utilization
	if u == nil || u.FiveHour == nil || *u.FiveHour != 0.5 || *u.SevenDay != 0.25 {
		t.Fatalf("pool utilization: %+v", u)
	}
	m := scrape(t, u2)
	if !strings.Contains(m, `claude_route_account_utilization{account="o1",window="5h"} 0.5`) ||
		!strings.Contains(m, `claude_route_account_utilization{account="o1",window="7d"} 0.25`) {
		t.Fatalf("utilization in /metrics:\n%s", grepLines(m, "utilization"))
	}
}

// A refused connection and a 5xx overflow too, at most once per request;
// with overflow off the customer gets the upstream's answer as before.
func TestConnectionAndServerErrorsOverflowOnce(t *testing.T) {
	e := newEnv(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	e.fake.AddAPIKey("sk-ant-api03-dead")
	e.writeAccount("high", "a1", map[string]any{"apiKey": "sk-ant-api03-dead", "baseURL": dead})
	kb := e.apiAccount("high", "b1")
	kc := e.apiAccount("medium", "m1")
	e.apiAccount("medium", "m2")
	u := e.start()
	key := e.issue("high", "a1")
	if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("refused connection must overflow: %d %s", r.status, r.body)
	}
	if got := e.served(); got[kb] != 1 {
		t.Fatalf("b1 must have served: %v", got)
	}
	// The overflow account fails too: no second overflow, its answer goes back.
	e.fake.InjectFault(kb, fakeupstream.Fault{Status: 500})
	if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 500 {
		t.Fatalf("one overflow per request: %d %s", r.status, r.body)
	}
	off := false
	tr, _ := e.tiers.Get("medium")
	tr.Overflow = &off
	mkey := e.issue("medium", "m1")
	e.fake.InjectFault(kc, fakeupstream.Fault{Status: 529})
	if r := post(t, u, "/v1/messages", mkey, msgBody("claude-sonnet-4-5", false)); r.status != 529 {
		t.Fatalf("overflow off: the account's 529 must reach the customer: %d", r.status)
	}
}

// Issue 24: one key whose requests make the upstream fail (five 500s) put
// every account of its tier into cooldown, and the other keys got 503. Its
// failures still overflow its own requests, but never cool an account:
// the other keys are served by their own accounts, which stay in service.
func TestOneKeysFailuresLeaveAccountsInService(t *testing.T) {
	e := newEnv(t)
	ka := e.apiAccount("high", "a1")
	kb := e.apiAccount("high", "b1")
	u := e.start()
	attacker := e.issue("high", "a1")
	victim := e.issue("high", "b1")
	e.fake.InjectFault(ka, fakeupstream.Fault{Status: 500, Times: 5})
	e.fake.InjectFault(kb, fakeupstream.Fault{Status: 500, Times: 5})
	for i := 0; i < 5; i++ {
		if r := post(t, u, "/v1/messages", attacker, msgBody("claude-sonnet-4-5", false)); r.status != 500 {
			t.Fatalf("failing request %d: %d %s", i+1, r.status, r.body)
		}
	}
	e.srvs[0].waitBackground() // the failures are recorded off the response path
	e.fake.ClearFaults()
	for _, name := range []string{"a1", "b1"} {
		if a := e.poolAccount("high", name); a.CoolingTill != nil {
			t.Fatalf("one key's failures cooled %s for everyone: %+v", name, a)
		}
	}
	if r := post(t, u, "/v1/messages", victim, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("another key: %d %s", r.status, r.body)
	}
	if got := e.served(); got[kb] == 0 {
		t.Fatalf("the other key must be served by its own account: %v", got)
	}
}

// A request whose bound account is limited overflows in one extra round
// trip (the choice and the chosen account's record together), once the
// instance has seen the tier's accounts.
func TestOverflowCostsOneRoundTrip(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk), withoutStoreWatch())
	ka := e.apiAccount("high", "a1")
	kb := e.apiAccount("high", "b1")
	url := e.start()
	key := e.issue("high", "a1")
	e.fake.RejectLimit(ka, clk.Now().Add(time.Hour), 1)
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("rejected 429 must overflow: %d %s", r.status, r.body)
	}
	e.srvs[0].handlers.Wait()
	e.srvs[0].waitBackground()
	counter := &testenv.RoundTrips{}
	e.apps[0].Store.Client.AddHook(counter)
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("while limited: %d %s", r.status, r.body)
	}
	e.srvs[0].handlers.Wait()
	if got := e.served(); got[kb] != 2 {
		t.Fatalf("b1 must serve the limited a1's key: %v", got)
	}
	// Clearing b1's failure count (after its answer) is not on the way in.
	n := counter.BeforeUsage()
	for _, trip := range counter.Names() {
		if len(trip) == 1 && trip[0] == "hdel cr:{pool}:fails" {
			n--
		}
	}
	if n > 3 {
		t.Fatalf("%d round trips before forwarding an overflow, budget 2 + 1 (%v)", n, counter.Names())
	}
}
