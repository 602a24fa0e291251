package refresh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sameCreds(a, b Creds) bool {
	return a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken && a.ExpiresAt.Equal(b.ExpiresAt)
}

// fakeEnv is a miniredis + fake clock world.
func fakeEnv(t *testing.T) (*env, *clock.Fake) {
	t.Helper()
	rdb, _ := testenv.Mini(t)
	clk := clock.NewFake(t0)
	return newEnv(t, rdb, clk), clk
}

func (e *env) creds(name string) Creds {
	e.t.Helper()
	c, err := e.st.Credentials(context.Background(), name)
	if err != nil {
		e.t.Fatalf("credentials %s: %v", name, err)
	}
	return c
}

func (e *env) status(r *Refresher, name string) Status {
	e.t.Helper()
	all, err := r.Status(context.Background())
	if err != nil {
		e.t.Fatalf("Status: %v", err)
	}
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	e.t.Fatalf("no status for %s", name)
	return Status{}
}

// assertRefreshed checks the store holds exactly what the upstream issued
// last for the account, and that it is a new pair.
func (e *env) assertRefreshed(name string, old Creds) Creds {
	e.t.Helper()
	c := e.creds(name)
	access, refresh, ok := e.up.CurrentTokens(old.RefreshToken)
	if !ok || c.AccessToken != access || c.RefreshToken != refresh {
		e.t.Fatalf("%s: store does not hold the upstream's newest tokens", name)
	}
	if c.AccessToken == old.AccessToken || !e.up.RefreshLive(c.RefreshToken) {
		e.t.Fatalf("%s: not refreshed, or the stored refresh token is dead", name)
	}
	return c
}

// Three replicas on a real Redis and the real clock: the account is
// refreshed by exactly one token call, the file gets the new tokens and
// every replica reads them.
func TestThreeReplicasRefreshExactlyOnce(t *testing.T) {
	clients := []redis.UniversalClient{testenv.Redis(t, 4), testenv.Redis(t, 4), testenv.Redis(t, 4)}
	e := newEnv(t, clients[0], clock.Real{})
	old := e.addAccount("acct", time.Now().Add(30*time.Second))

	var rs []*Refresher
	var stores []*testStore
	for _, c := range clients {
		cfg := e.config()
		cfg.Lead = 28 * time.Second // fires about 2 s from now
		st := &testStore{rdb: c}
		stores = append(stores, st)
		r := New(c, st, e.fw, e.bl, cfg)
		rs = append(rs, r)
		e.start(r, 1)
	}

	waitFor(t, "one write-back", func() bool { return len(e.fw.all()) >= 1 })
	newCreds := e.assertRefreshed("acct", old)
	// Every replica has re-planned for the new expiry (the losers reloaded
	// under the lock and found the refresh done).
	waitFor(t, "all replicas re-planned", func() bool {
		for _, r := range rs {
			if _, exp, ok := r.plannedFor("acct"); !ok || !exp.Equal(newCreds.ExpiresAt.Truncate(time.Millisecond)) {
				return false
			}
		}
		return true
	})
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("token calls = %d, want exactly 1", n)
	}
	w := e.fw.all()
	if len(w) != 1 || w[0].name != "acct" || w[0].c.AccessToken != newCreds.AccessToken || w[0].c.RefreshToken != newCreds.RefreshToken {
		t.Fatalf("file write-backs: want one with the new tokens, got %d", len(w))
	}
	for i, st := range stores {
		c, err := st.Credentials(context.Background(), "acct")
		if err != nil || c.AccessToken != newCreds.AccessToken {
			t.Fatalf("replica %d does not read the new access token (err %v)", i, err)
		}
	}
}

// Ten accounts expiring at one moment are all refreshed before it, with
// the 60 s global lock in force between any two refreshes.
func TestTenAccountsSameExpiryAllRefreshedInTime(t *testing.T) {
	e, clk := fakeEnv(t)
	exp := t0.Add(2 * time.Hour)
	olds := map[string]Creds{}
	for i := range 10 {
		name := fmt.Sprintf("a%02d", i)
		olds[name] = e.addAccount(name, exp)
	}
	r := e.refresher(e.config())
	e.start(r, 10)

	clk.Advance(2 * time.Hour)

	w := e.fw.all()
	if len(w) != 10 || e.up.TokenCalls() != 10 {
		t.Fatalf("refreshes = %d, token calls = %d; want 10 and 10", len(w), e.up.TokenCalls())
	}
	for i, x := range w {
		if !x.at.Before(exp) {
			t.Errorf("%s refreshed at %s, not before its expiry %s", x.name, x.at, exp)
		}
		if i > 0 && x.at.Sub(w[i-1].at) < DefaultGlobalLock {
			t.Errorf("%s refreshed %s after the previous one: global lock not respected", x.name, x.at.Sub(w[i-1].at))
		}
	}
	for name, old := range olds {
		e.assertRefreshed(name, old)
	}
	if strings.Contains(e.logs.String(), "blocked by global refresh lock") {
		t.Errorf("the plan should have spaced the refreshes so none is blocked")
	}
}

// A failing endpoint: 3-minute cooldown between attempts, at most 3
// attempts per 24 h, and attempts start again after the window.
func TestFailureCooldownAndAttemptLimit(t *testing.T) {
	e, clk := fakeEnv(t)
	e.addAccount("acct", t0.Add(time.Hour))
	e.up.InjectTokenFault(fakeupstream.TokenFault{Status: http.StatusInternalServerError, Times: 100})
	r := e.refresher(e.config())
	e.start(r, 1)

	clk.Advance(time.Hour - time.Minute) // the planned slot
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("calls at the slot = %d, want 1", n)
	}
	s := e.status(r, "acct")
	if s.Attempts24h != 1 || !s.CooldownUntil.Equal(clk.Now().Add(3*time.Minute)) || s.LastError == "" {
		t.Fatalf("after one failure: %+v", s)
	}
	clk.Advance(3*time.Minute - time.Second)
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("a call was made during the cooldown (calls = %d)", n)
	}
	clk.Advance(time.Second)
	if n := e.up.TokenCalls(); n != 2 {
		t.Fatalf("calls after the cooldown = %d, want 2", n)
	}
	clk.Advance(3 * time.Minute)
	if n := e.up.TokenCalls(); n != 3 {
		t.Fatalf("calls = %d, want 3", n)
	}
	// The token (1 h) expires long before the 24 h window lets another try
	// in: the account is given up and blacklisted, and nothing retries it.
	reason, ok := e.bl.reason("acct")
	if !ok || !strings.Contains(reason, "failed 3 times") {
		t.Fatalf("exhausted before expiry must blacklist: %v %q", ok, reason)
	}
	if s := e.status(r, "acct"); s.Attempts24h != 3 {
		t.Fatalf("Attempts24h = %d, want 3", s.Attempts24h)
	}
	if !strings.Contains(e.logs.String(), "attempt 3/3") {
		t.Errorf("no \"attempt 3/3\" log line")
	}
	clk.Advance(48 * time.Hour)
	if n := e.up.TokenCalls(); n != 3 {
		t.Fatalf("calls = %d after giving up, want 3", n)
	}
	if _, err := r.RefreshNow(context.Background(), "acct", e.creds("acct").AccessToken); !errors.Is(err, ErrGaveUp) {
		t.Fatalf("RefreshNow on a given-up account: %v", err)
	}
}

// Attempts used up while the token still outlives the window: wait for the
// window, do not blacklist.
func TestAttemptLimitWaitsForTheWindowWhenTheTokenOutlivesIt(t *testing.T) {
	e, clk := fakeEnv(t)
	e.addAccount("acct", t0.Add(30*time.Hour))
	e.up.InjectTokenFault(fakeupstream.TokenFault{Status: http.StatusInternalServerError, Times: 3})
	cfg := e.config()
	cfg.Lead = 29 * time.Hour
	r := e.refresher(cfg)
	e.start(r, 1)
	clk.Advance(time.Hour + 6*time.Minute) // slot, +3 min, +3 min: three failures
	if n := e.up.TokenCalls(); n != 3 {
		t.Fatalf("calls = %d, want 3", n)
	}
	if _, ok := e.bl.reason("acct"); ok {
		t.Fatal("a token that outlives the window must not be given up")
	}
	if _, err := r.RefreshNow(context.Background(), "acct", e.creds("acct").AccessToken); !errors.Is(err, ErrAttemptsExhausted) {
		t.Fatalf("RefreshNow with attempts exhausted: %v", err)
	}
	old := e.creds("acct")
	clk.Advance(23*time.Hour + 54*time.Minute) // the window opened by the first failure ends
	if n := e.up.TokenCalls(); n != 4 {
		t.Fatalf("calls when the window ends = %d, want 4", n)
	}
	e.assertRefreshed("acct", old)
	if _, ok := e.bl.reason("acct"); ok {
		t.Fatal("blacklisted")
	}
}

// A success after failures resets attempts and cooldown.
func TestSuccessResetsAttemptsAndCooldown(t *testing.T) {
	e, clk := fakeEnv(t)
	old := e.addAccount("acct", t0.Add(time.Hour))
	e.up.InjectTokenFault(fakeupstream.TokenFault{Status: http.StatusBadGateway, Times: 2})
	r := e.refresher(e.config())
	e.start(r, 1)

	clk.Advance(time.Hour - time.Minute + 6*time.Minute) // slot, +3 min, +3 min
	if n := e.up.TokenCalls(); n != 3 {
		t.Fatalf("calls = %d, want 3 (two failures, one success)", n)
	}
	e.assertRefreshed("acct", old)
	s := e.status(r, "acct")
	if s.Attempts24h != 0 || !s.CooldownUntil.IsZero() || s.LastError != "" || !s.LastSuccess.Equal(t0.Add(time.Hour+5*time.Minute)) {
		t.Fatalf("after success: %+v", s)
	}
	// The next failure counts from 1 again.
	e.up.InjectTokenFault(fakeupstream.TokenFault{Status: http.StatusBadGateway})
	clk.Advance(8 * time.Hour)
	if s := e.status(r, "acct"); s.Attempts24h != 1 {
		t.Fatalf("first failure after a success counts %d, want 1", s.Attempts24h)
	}
}

// invalid_grant blacklists the account and its dead refresh token is never
// sent again.
func TestInvalidGrantBlacklists(t *testing.T) {
	e, clk := fakeEnv(t)
	e.addAccount("acct", t0.Add(time.Hour))
	// The store holds a refresh token the upstream never issued (or rotated
	// away): a genuine invalid_grant.
	c := e.creds("acct")
	c.RefreshToken = secret("sk-ant-ort01-")
	e.remember(c)
	if err := e.st.put(context.Background(), "acct", c); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	told := &gaveUpRecorder{}
	cfg.GaveUp = told
	r := e.refresher(cfg)
	e.start(r, 1)

	clk.Advance(time.Hour)
	reason, ok := e.bl.reason("acct")
	if !ok || !strings.Contains(reason, "invalid_grant") {
		t.Fatalf("blacklisted = %v, reason %q", ok, reason)
	}
	if got := told.all(); len(got) != 1 || got[0] != "acct: "+reason {
		t.Fatalf("alerts told %q, want the account once with the reason", got)
	}
	clk.Advance(48 * time.Hour)
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("token calls = %d, want 1 (a refused token is not retried)", n)
	}
	_, err := r.RefreshNow(context.Background(), "acct", c.AccessToken)
	if !errors.Is(err, ErrGaveUp) || e.up.TokenCalls() != 1 {
		t.Fatalf("RefreshNow on a dead account: %v, calls %d", err, e.up.TokenCalls())
	}
	if !strings.Contains(e.logs.String(), "blacklisting account") {
		t.Errorf("no blacklisting log line")
	}
}

// Being blocked by the global lock is not an attempt; the refresh happens
// as soon as the lock ends. Urgent refreshes skip the global lock.
func TestGlobalLockBlocksWithoutCountingAttempts(t *testing.T) {
	e, clk := fakeEnv(t)
	old := e.addAccount("acct", t0.Add(time.Hour))
	urgent := e.addAccount("urgent", t0.Add(10*time.Hour))
	r := e.refresher(e.config())
	e.start(r, 2)

	slot := t0.Add(time.Hour - time.Minute)
	// Another replica refreshed some account 10 s before our slot.
	if err := r.setGlobal(context.Background(), slot.Add(-10*time.Second)); err != nil {
		t.Fatal(err)
	}
	clk.Set(slot)
	if n := e.up.TokenCalls(); n != 0 {
		t.Fatalf("a call was made under the global lock (calls = %d)", n)
	}
	if !strings.Contains(e.logs.String(), "blocked by global refresh lock (50s left)") {
		t.Errorf("no blocked log line with the seconds left")
	}
	if s := e.status(r, "acct"); s.Attempts24h != 0 || !s.CooldownUntil.IsZero() {
		t.Fatalf("blocked counted as a failure: %+v", s)
	}

	// The urgent path does not wait for the global lock.
	got, err := r.RefreshNow(context.Background(), "urgent", urgent.AccessToken)
	if err != nil || got.AccessToken == urgent.AccessToken {
		t.Fatalf("RefreshNow under the global lock: %v", err)
	}
	e.assertRefreshed("urgent", urgent)

	// The urgent success restarted the lock: acct now waits for it.
	clk.Advance(50 * time.Second)
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("calls = %d, want 1 (only the urgent one)", n)
	}
	clk.Advance(10 * time.Second)
	if n := e.up.TokenCalls(); n != 2 {
		t.Fatalf("calls = %d after the lock, want 2", n)
	}
	e.assertRefreshed("acct", old)
}

// 429: not before Retry-After, not definitive.
func TestRateLimitedHonoursRetryAfter(t *testing.T) {
	e, clk := fakeEnv(t)
	old := e.addAccount("acct", t0.Add(time.Hour))
	e.up.InjectTokenFault(fakeupstream.TokenFault{Status: http.StatusTooManyRequests, RetryAfter: 600})
	r := e.refresher(e.config())
	e.start(r, 1)

	clk.Advance(time.Hour - time.Minute)
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("calls = %d, want 1", n)
	}
	if _, err := r.RefreshNow(context.Background(), "acct", old.AccessToken); !errors.Is(err, ErrCooldown) {
		t.Fatalf("RefreshNow during Retry-After: %v", err)
	}
	clk.Advance(599 * time.Second)
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("retried before Retry-After (calls = %d)", n)
	}
	clk.Advance(time.Second)
	if n := e.up.TokenCalls(); n != 2 {
		t.Fatalf("calls = %d after Retry-After, want 2", n)
	}
	e.assertRefreshed("acct", old)
	if _, ok := e.bl.reason("acct"); ok {
		t.Fatalf("a 429 blacklisted the account")
	}
}

// Two goroutines hit an expired token at once: one token call, both get
// the new credentials.
func TestRefreshNowConcurrentOneCall(t *testing.T) {
	e, _ := fakeEnv(t)
	old := e.addAccount("acct", t0.Add(-time.Second))
	// Hold the answer so the second caller surely waits on the lock.
	e.up.InjectTokenFault(fakeupstream.TokenFault{Delay: 200 * time.Millisecond})
	r := e.refresher(e.config())

	var wg sync.WaitGroup
	got := make([]Creds, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { got[i], errs[i] = r.RefreshNow(context.Background(), "acct", old.AccessToken) })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
	}
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("token calls = %d, want 1", n)
	}
	cur := e.assertRefreshed("acct", old)
	if !sameCreds(got[0], cur) || !sameCreds(got[1], cur) {
		t.Fatalf("callers did not both get the stored credentials")
	}
	// A caller that saw an already-replaced token gets the current one at once.
	c, err := r.RefreshNow(context.Background(), "acct", old.AccessToken)
	if err != nil || !sameCreds(c, cur) || e.up.TokenCalls() != 1 {
		t.Fatalf("RefreshNow with a stale seen token: %v, calls %d", err, e.up.TokenCalls())
	}
}

// The store's CAS refuses a writer whose used refresh token is no longer
// the stored one, and the refresher then keeps the store's credentials.
func TestCASRefusesStaleWriter(t *testing.T) {
	e, _ := fakeEnv(t)
	ctx := context.Background()
	old := e.addAccount("acct", t0.Add(-time.Second))

	stale := Creds{AccessToken: secret("sk-ant-oat01-"), RefreshToken: secret("sk-ant-ort01-"), ExpiresAt: t0.Add(time.Hour)}
	e.remember(stale)
	if ok, err := e.st.SwapCredentials(ctx, "acct", "not-the-stored-one", stale); err != nil || ok {
		t.Fatalf("CAS with a wrong refresh token: ok=%v err=%v", ok, err)
	}
	if e.creds("acct").AccessToken != old.AccessToken {
		t.Fatalf("a refused CAS changed the store")
	}

	// A sync lands newer credentials while our refresh is in flight.
	newer := Creds{AccessToken: secret("sk-ant-oat01-"), RefreshToken: secret("sk-ant-ort01-"), ExpiresAt: t0.Add(8 * time.Hour)}
	e.remember(newer)
	e.st.beforeSwap = func() {
		if err := e.st.put(ctx, "acct", newer); err != nil {
			t.Errorf("put: %v", err)
		}
	}
	r := e.refresher(e.config())
	got, err := r.RefreshNow(ctx, "acct", old.AccessToken)
	if err != nil {
		t.Fatalf("RefreshNow: %v", err)
	}
	if got.AccessToken != newer.AccessToken || e.creds("acct").AccessToken != newer.AccessToken {
		t.Fatalf("the stale refresh overwrote newer credentials")
	}
	if len(e.fw.all()) != 0 {
		t.Fatalf("the stale refresh wrote the account file")
	}
}

// Run owns its timers: Replan picks up added and removed accounts, and
// cancelling Run stops every timer.
func TestReplanAndShutdown(t *testing.T) {
	e, clk := fakeEnv(t)
	e.addAccount("a", t0.Add(time.Hour))
	r := e.refresher(e.config())
	stop := e.start(r, 1)

	b := e.addAccount("b", t0.Add(30*time.Minute))
	if err := e.rdb.Del(context.Background(), testAcctKey("a")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Replan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := r.plannedFor("a"); ok {
		t.Fatalf("a removed account keeps its timer")
	}
	at, _, ok := r.plannedFor("b")
	if !ok || !at.Equal(t0.Add(29*time.Minute)) {
		t.Fatalf("b planned at %v (ok %v), want expiry − Lead", at, ok)
	}
	if s := e.status(r, "b"); !s.NextRefresh.Equal(at) {
		t.Fatalf("Status.NextRefresh = %v, want %v", s.NextRefresh, at)
	}
	clk.Advance(30 * time.Minute)
	e.assertRefreshed("b", b)

	stop()
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d timers still pending after Run returned", n)
	}
	clk.Advance(48 * time.Hour)
	if n := e.up.TokenCalls(); n != 1 {
		t.Fatalf("a refresh ran after Run returned (calls = %d)", n)
	}
	if err := r.Replan(context.Background()); err != nil || clk.Pending() != 0 {
		t.Fatalf("Replan without Run armed timers (err %v)", err)
	}
}

// Every failure path and the success path log, and none logs a token (the
// check itself runs in every test's cleanup; this test makes sure each kind
// of line was produced at least once).
func TestLogsCarryNoTokens(t *testing.T) {
	e, clk := fakeEnv(t)
	old := e.addAccount("ok", t0.Add(time.Hour))
	e.addAccount("dead", t0.Add(2*time.Hour))
	c := e.creds("dead")
	c.RefreshToken = secret("sk-ant-ort01-")
	e.remember(c)
	if err := e.st.put(context.Background(), "dead", c); err != nil {
		t.Fatal(err)
	}
	e.up.InjectTokenFault(fakeupstream.TokenFault{Status: http.StatusTooManyRequests, RetryAfter: 1,
		Body: `{"error":"rate_limited","error_description":"slow down ` + old.RefreshToken + `"}`})
	e.up.InjectTokenFault(fakeupstream.TokenFault{Status: http.StatusInternalServerError,
		Body: `{"error":"` + old.AccessToken + `"}`})
	r := e.refresher(e.config())
	e.start(r, 2)
	clk.Advance(time.Hour - time.Minute) // ok: 429
	if _, err := r.RefreshNow(context.Background(), "ok", old.AccessToken); !errors.Is(err, ErrCooldown) {
		t.Fatalf("RefreshNow in cooldown: %v", err)
	}
	clk.Advance(2 * time.Hour) // ok: 500, then success; dead: invalid_grant
	e.assertRefreshed("ok", old)

	_, err := r.RefreshNow(context.Background(), "dead", c.AccessToken)
	if err == nil || strings.Contains(err.Error(), c.RefreshToken) || strings.Contains(err.Error(), c.AccessToken) {
		t.Fatalf("RefreshNow error carries a token or is nil: %v", err)
	}
	logs := e.logs.String()
	for _, want := range []string{"refresh timer set", "refresh timer fired", "refresh succeeded",
		"global refresh lock set for 60s", "refresh failed (attempt 1/3", "in cooldown", "blacklisting account"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if le := e.status(r, "dead").LastError; le == "" || strings.Contains(le, "sk-ant-") {
		t.Errorf("LastError is empty or carries a token: %q", le)
	}
}

// invalid_grant for a refresh token the store has since replaced (the
// operator dropped in a fresh login) must not blacklist the account.
func TestInvalidGrantForReplacedTokenDoesNotBlacklist(t *testing.T) {
	e, _ := fakeEnv(t)
	ctx := context.Background()
	e.addAccount("acct", t0.Add(-time.Second))
	c := e.creds("acct")
	c.RefreshToken = secret("sk-ant-ort01-") // unknown upstream: invalid_grant
	e.remember(c)
	if err := e.st.put(ctx, "acct", c); err != nil {
		t.Fatal(err)
	}
	fresh := Creds{AccessToken: secret("sk-ant-oat01-"), RefreshToken: secret("sk-ant-ort01-"), ExpiresAt: t0.Add(8 * time.Hour)}
	e.up.AddOAuth(fresh.AccessToken, fresh.RefreshToken, fresh.ExpiresAt)
	e.remember(fresh)
	e.st.onCredentials = func(n int) {
		if n == 2 { // the reload after the refusal: a sync landed new credentials
			if err := e.st.put(ctx, "acct", fresh); err != nil {
				t.Errorf("put: %v", err)
			}
		}
	}
	r := e.refresher(e.config())
	got, err := r.RefreshNow(ctx, "acct", c.AccessToken)
	if err != nil || !sameCreds(got, e.creds("acct")) || got.AccessToken != fresh.AccessToken {
		t.Fatalf("RefreshNow: %v; want the store's fresh credentials", err)
	}
	if _, ok := e.bl.reason("acct"); ok {
		t.Fatalf("blacklisted for a token the store no longer holds")
	}
}

// gaveUpRecorder is the alerts' side of a refresh given up.
type gaveUpRecorder struct {
	mu  sync.Mutex
	got []string
}

func (g *gaveUpRecorder) RefreshGaveUp(account, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, account+": "+reason)
}

func (g *gaveUpRecorder) all() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.got...)
}
