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
// the limiter answers from memory).
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
func (g *Gate) Wait() {
	g.bg.Wait()
	if g.cfg.Limiter != nil {
		g.cfg.Limiter.Wait()
	}
}

// acctEntry is what the account cache holds: an account's record and
// its pool state as seen from one tier.
type acctEntry struct {
	acct  accounts.Account
	state accounts.State
	err   error // accounts.FromHash's: a removed or unreadable account
}

// place binds the key if needed, takes its quota place (q nil: none)
// and loads its account. A refusal of the quota is ErrQuota, after the
// limiter's own waits (Limiter.Await) found asking again useless; they
// run outside the store budget.
func (g *Gate) place(ctx context.Context, a *Admission, q *ratelimit.Request) error {
	err := g.placeOnce(ctx, a, q)
	for try := 0; errors.Is(err, ErrQuota) && g.cfg.Limiter.Await(ctx, *a.Quota(), try); try++ {
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
		if err != nil { // a place whose answer was lost, the limiter gives back
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
		if err != nil { // a place whose answer was lost, the limiter gives back
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
	a.holdQuota(res, g.cfg.Limiter)
	if !res.Allowed {
		return ErrQuota
	}
	return nil
}

// readBackFor bounds the retries of a lost binding's read-back (and so a
// shutdown's wait).
const readBackFor = 10 * time.Second
