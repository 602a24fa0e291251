package refresh

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// Regressions from code review.

// Accounts held back (cooldown, attempts used up) must not take places in
// the spaced walk and push an account that can refresh past its expiry.
func TestPlanHeldAccountsDoNotPushOthersPastExpiry(t *testing.T) {
	now := t0
	items := []planItem{
		{name: "held1", expires: now.Add(-time.Hour), notBefore: now.Add(24 * time.Hour)},
		{name: "held2", expires: now.Add(-time.Hour), notBefore: now.Add(24 * time.Hour)},
		{name: "live", expires: now.Add(2 * time.Minute)},
	}
	got := plan(now, time.Time{}, items, time.Minute, 65*time.Second)
	if !got["live"].Before(items[2].expires) {
		t.Fatalf("live account planned at now+%s, after its expiry", got["live"].Sub(now))
	}
	if !got["held1"].Equal(now.Add(24 * time.Hour)) {
		t.Fatalf("held account must wait for its own time: %s", got["held1"].Sub(now))
	}
}

// errOnceStore fails the first SwapCredentials with a transient error.
type errOnceStore struct {
	*testStore
	fails int
}

func (s *errOnceStore) SwapCredentials(ctx context.Context, name, used string, next Creds) (bool, error) {
	if s.fails > 0 {
		s.fails--
		return false, errors.New("i/o timeout")
	}
	return s.testStore.SwapCredentials(ctx, name, used, next)
}

// A store error after a successful token call must not lose the rotated
// tokens (the old refresh token is dead by then).
func TestStoreErrorAfterTokenCallKeepsTheNewTokens(t *testing.T) {
	e, clk := fakeEnv(t)
	old := e.addAccount("acct", t0.Add(time.Hour))
	st := &errOnceStore{testStore: e.st, fails: 4} // more than the immediate retries
	r := New(e.rdb, st, e.fw, e.bl, e.config())
	e.start(r, 1)
	clk.Advance(time.Hour - time.Minute)
	if len(e.fw.all()) == 0 {
		t.Fatal("the new tokens must at least reach the file")
	}
	clk.Advance(2 * time.Minute) // a later try stores the kept tokens
	if _, bl := e.bl.reason("acct"); bl {
		t.Fatal("a transient store error cost the account its refresh token")
	}
	if e.up.TokenCalls() != 1 {
		t.Fatalf("token calls = %d: the kept tokens must be stored, not a new refresh made", e.up.TokenCalls())
	}
	e.assertRefreshed("acct", old)
}

// Attempts used up with the token expiring before another try: blacklist.
func TestAttemptsExhaustedBeforeExpiryBlacklists(t *testing.T) {
	e, clk := fakeEnv(t)
	e.addAccount("acct", t0.Add(time.Hour))
	e.up.InjectTokenFault(fakeupstream.TokenFault{Status: http.StatusInternalServerError, Times: 100})
	cfg := e.config()
	cfg.Lead = 20 * time.Minute // room for 3 attempts before expiry
	r := e.refresher(cfg)
	e.start(r, 1)
	clk.Advance(50 * time.Minute)
	if e.up.TokenCalls() != 3 {
		t.Fatalf("calls = %d", e.up.TokenCalls())
	}
	if _, ok := e.bl.reason("acct"); !ok {
		t.Fatal("3 failed attempts before expiry must blacklist")
	}
}
