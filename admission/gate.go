package admission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/cache"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/tiers"
)

// ErrQuota is the quota's refusal when the key's window is full; the
// admission's Quota says how full, and until when.
var ErrQuota = errors.New("quota used up")

// ErrStore wraps a store failure during the admission: the request was
// not admitted (whatever the store may have counted is given back).
var ErrStore = errors.New("store unavailable")

// GateConfig are the gate's collaborators and settings.
type GateConfig struct {
	Stores
	Tiers *tiers.Live
	// Bodies is the process's budget of request-body bytes (nil: none).
	Bodies *Budget
	Clock  clock.Clock
	// Log takes the bindings' news (a key moved, a ledger post failed).
	Log logrus.FieldLogger
	// CacheTTL serves a key's record and binding, and an account's record
	// and pool state, from memory for that long (package cache); negative:
	// no cache.
	CacheTTL time.Duration
	// StoreBudget bounds each round of store work (default 900 ms); a
	// wait for places another replica holds runs outside it.
	StoreBudget time.Duration
}

// Gate admits requests: the key, its concurrency place, the body, its
// budget, binding and quota place, and its account, in at most two round
// trips (none for the store when the key and its account are cached and
// a spare is at hand).
type Gate struct {
	cfg    GateConfig
	keys   *cache.Map[keyEntry]
	cache  *cache.Map[*acctEntry]
	counts *countBuckets
	// bg tracks give-backs retried off the request path.
	bg sync.WaitGroup
}

// NewGate returns a gate.
func NewGate(cfg GateConfig) *Gate {
	if cfg.StoreBudget <= 0 {
		cfg.StoreBudget = 900 * time.Millisecond
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Log = l
	}
	return &Gate{cfg: cfg, keys: cache.New[keyEntry](cfg.CacheTTL), cache: cache.New[*acctEntry](cfg.CacheTTL),
		counts: newCountBuckets(cfg.Clock)}
}

// Forget drops every cached account record and pool state: the caller
// changed one (a bind, a blacklist, a refresh).
func (g *Gate) Forget() { g.cache.Flush() }

// ForgetAll drops every cached key and account: an operator changed one.
func (g *Gate) ForgetAll() {
	g.keys.Flush()
	g.cache.Flush()
}

// Wait waits for the give-backs being retried in the background.
func (g *Gate) Wait() { g.bg.Wait() }

// acctEntry is what the account cache holds: an account's record and
// its pool state as seen from one tier.
type acctEntry struct {
	acct  accounts.Account
	state accounts.State
	err   error // accounts.FromHash's: a removed or unreadable account
}

// place binds the key if needed, takes its quota place (q nil: none)
// and loads its account. A refusal of the quota is ErrQuota; while
// another replica holds places taken ahead of its requests (spares), it
// waits for them (outside the store budget, at most twice) before
// refusing.
func (g *Gate) place(ctx context.Context, a *Admission, q *ratelimit.Request) error {
	err := g.placeOnce(ctx, a, q)
	for try := 0; errors.Is(err, ErrQuota) && try < 2; try++ {
		held := a.Quota().Held
		if held <= 0 || !sleepCtx(ctx, held+10*time.Millisecond) {
			break
		}
		err = g.placeOnce(ctx, a, q)
	}
	return err
}

func (g *Gate) placeOnce(ctx context.Context, a *Admission, q *ratelimit.Request) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreBudget)
	defer cancel()
	c := &a.Caller
	if c.Account == "" {
		if err := g.bind(ctx, c); err != nil {
			return err
		}
	}
	e, hit := g.cache.Get(c.Tier.Name + "/" + c.Account)
	switch {
	case hit && q != nil:
		// The account is cached: the quota is the only trip, shared with
		// the same key's concurrent admissions (ratelimit.AdmitMerged).
		res, err := g.cfg.Limiter.AdmitMerged(ctx, *q)
		if err != nil {
			if res != nil && res.ID != "" { // the run may have taken the place with its answer lost
				g.giveBack(func(ctx context.Context) error { return g.cfg.Limiter.Abandon(ctx, *res) })
			}
			return fmt.Errorf("%w: %w", ErrStore, err)
		}
		if err := g.hold(a, *res); err != nil {
			return err
		}
	case !hit:
		var err error
		if e, err = g.load(ctx, a, q); err != nil {
			return err
		}
	}
	if !e.state.InTier || e.state.Blacklisted || e.err != nil {
		// Its account was blacklisted or removed: move the key.
		acct, err := a.Rebind(ctx)
		a.Account, a.State = acct, accounts.State{}
		return err
	}
	a.Account, a.State = e.acct, e.state
	return nil
}

// load takes the quota place and, when the account is not cached, reads
// its record and pool state, all in one pipelined round trip.
func (g *Gate) load(ctx context.Context, a *Admission, q *ratelimit.Request) (*acctEntry, error) {
	c := &a.Caller
	gen := g.cache.Begin()
	var pending *ratelimit.Pending
	var acctCmd *redis.MapStringStringCmd
	var stateCmds accounts.StateCmds
	err := g.cfg.Batch.Do(ctx, func(pipe redis.Pipeliner) {
		if q != nil {
			pending = g.cfg.Limiter.QueueAdmit(ctx, pipe, *q)
		}
		acctCmd = g.cfg.Accounts.QueueGet(ctx, pipe, c.Account)
		stateCmds = g.cfg.Pool.QueueState(ctx, pipe, c.Tier.Name, c.Account)
	})
	if err != nil { // nothing was sent
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if pending != nil {
		res, err := pending.Result(ctx)
		if err != nil {
			// A timeout (or a NOSCRIPT re-run that timed out) may have
			// counted: take back a place whose answer was lost; removing a
			// place never taken is harmless.
			g.giveBack(pending.Abandon)
			return nil, fmt.Errorf("%w: %w", ErrStore, err)
		}
		if err := g.hold(a, res); err != nil {
			return nil, err
		}
	}
	state, err := stateCmds.Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if err := acctCmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	acct, aerr := accounts.FromHash(c.Account, acctCmd.Val())
	e := &acctEntry{acct: acct, state: state, err: aerr}
	g.cache.Put(c.Tier.Name+"/"+c.Account, gen, e)
	return e, nil
}

// hold puts the quota's answer on the admission; a refusal is ErrQuota.
func (g *Gate) hold(a *Admission, res ratelimit.Result) error {
	a.holdQuota(res, g)
	if !res.Allowed {
		return ErrQuota
	}
	return nil
}

// Refund gives a place back (the admissions' refunder): at once, and when
// that fails (a store slow enough to lose it), again in the background.
func (g *Gate) Refund(ctx context.Context, res ratelimit.Result) error {
	if err := g.cfg.Limiter.Refund(ctx, res); err != nil {
		// ZREM of the request's own id is idempotent: a refund that did
		// land and is sent again is harmless.
		g.giveBack(func(ctx context.Context) error { return g.cfg.Limiter.Refund(ctx, res) })
		return err
	}
	return nil
}

// giveBack runs a quota give-back (an idempotent ZREM of the request's
// id) in the background until it succeeds, for up to giveBackFor. One try
// is not enough: a store slow enough to lose an admission's answer also
// fails the give-back's new connection (its handshake times out before the
// command is sent), and the place would stay taken for the whole window.
func (g *Gate) giveBack(do func(context.Context) error) {
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		wait := 100 * time.Millisecond
		for end := time.Now().Add(giveBackFor); ; wait *= 2 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := do(ctx)
			cancel()
			if err == nil || time.Now().Add(wait).After(end) {
				return
			}
			time.Sleep(wait)
		}
	}()
}

// giveBackFor bounds the retries of a give-back (and so a shutdown's wait).
const giveBackFor = 10 * time.Second

// sleepCtx waits d or until ctx ends; false if it ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
