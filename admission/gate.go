package admission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/cache"
	"github.com/claude-route/claude-route/ratelimit"
)

// ErrQuota is the admission's refusal when the key's window is full; the
// ticket's Quota says how full, and until when.
var ErrQuota = errors.New("quota used up")

// ErrStore wraps a store failure during the admission: the request was
// not admitted (whatever the store may have counted is given back).
var ErrStore = errors.New("store unavailable")

// Pool reads an account's pool state.
type Pool interface {
	QueueState(ctx context.Context, pipe redis.Pipeliner, tier, account string) accounts.StateCmds
}

// Accounts reads upstream credentials.
type Accounts interface {
	QueueGet(ctx context.Context, pipe redis.Pipeliner, name string) *redis.MapStringStringCmd
	Get(ctx context.Context, name string) (accounts.Account, error)
}

// Limiter takes places in the keys' windows (ratelimit.Limiter).
type Limiter interface {
	QueueAdmit(ctx context.Context, pipe redis.Pipeliner, r ratelimit.Request) *ratelimit.Pending
	AdmitMerged(ctx context.Context, r ratelimit.Request) (*ratelimit.Result, error)
	Abandon(ctx context.Context, res ratelimit.Result) error
	Refund(ctx context.Context, res ratelimit.Result) error
}

// Pipeliner runs queued commands in one round trip (store.Coalescer, or
// a plain pipeline). An error means nothing was sent; otherwise each
// command carries its own result.
type Pipeliner func(ctx context.Context, queue func(redis.Pipeliner)) error

// GateConfig are the gate's collaborators and settings.
type GateConfig struct {
	Pool     Pool
	Accounts Accounts
	Limiter  Limiter
	Pipeline Pipeliner
	// CacheTTL serves an account's record and pool state from memory for
	// that long (package cache); negative: no cache.
	CacheTTL time.Duration
	// StoreBudget bounds each round of store work (default 900 ms); a
	// wait for places another replica holds runs outside it.
	StoreBudget time.Duration
}

// Gate admits requests: the key's binding, its quota place and its
// account, in at most one round trip for a bound key (none when its
// account is cached and a spare is at hand).
type Gate struct {
	cfg   GateConfig
	cache *cache.Map[*acctEntry]
	// bg tracks give-backs retried off the request path.
	bg sync.WaitGroup
}

// NewGate returns a gate.
func NewGate(cfg GateConfig) *Gate {
	if cfg.StoreBudget <= 0 {
		cfg.StoreBudget = 900 * time.Millisecond
	}
	return &Gate{cfg: cfg, cache: cache.New[*acctEntry](cfg.CacheTTL)}
}

// Forget drops every cached account record and pool state: the caller
// changed one (a bind, a blacklist, a refresh, an operator's change).
func (g *Gate) Forget() { g.cache.Flush() }

// Wait waits for the give-backs being retried in the background.
func (g *Gate) Wait() { g.bg.Wait() }

// Request is one request to admit.
type Request struct {
	Key, Tier string
	// Account is the key's bound account, "" when not bound yet.
	Account string
	// Quota is the window to take a place in; nil when the request is
	// not counted (an unlimited family, count_tokens).
	Quota *ratelimit.Request
	// Bind binds (or rebinds) the key to an account of its tier and
	// returns it; its error is returned by Admit as is.
	Bind func(ctx context.Context) (string, error)
}

// Admitted is the account an admitted request goes to, as the admission
// read it (a limited or cooling one is routing's to route around).
type Admitted struct {
	Account accounts.Account
	State   accounts.State
}

// acctEntry is what the account cache holds: an account's record and
// its pool state as seen from one tier.
type acctEntry struct {
	acct  accounts.Account
	state accounts.State
	err   error // accounts.FromHash's: a removed or unreadable account
}

// Admit binds the key if needed, takes its quota place and loads its
// account. The place goes on tk (tk.Quota, settled by tk.Refund and
// tk.Release only). A refusal of the quota is ErrQuota; while another
// replica holds places taken ahead of its requests (spares), Admit waits
// for them (outside the store budget, at most twice) before refusing.
func (g *Gate) Admit(ctx context.Context, r *Request, tk *Ticket) (*Admitted, error) {
	ad, err := g.admitOnce(ctx, r, tk)
	for try := 0; errors.Is(err, ErrQuota) && try < 2; try++ {
		held := tk.Quota().Held
		if held <= 0 || !sleepCtx(ctx, held+10*time.Millisecond) {
			break
		}
		ad, err = g.admitOnce(ctx, r, tk)
	}
	return ad, err
}

func (g *Gate) admitOnce(ctx context.Context, r *Request, tk *Ticket) (*Admitted, error) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreBudget)
	defer cancel()
	if r.Account == "" {
		acct, err := r.Bind(ctx)
		if err != nil {
			return nil, err
		}
		r.Account = acct
	}
	e, hit := g.cache.Get(r.Tier + "/" + r.Account)
	switch {
	case hit && r.Quota != nil:
		// The account is cached: the quota is the only trip, shared with
		// the same key's concurrent admissions (ratelimit.AdmitMerged).
		if err := g.merged(ctx, r, tk); err != nil {
			return nil, err
		}
	case !hit || r.Quota != nil:
		var err error
		if e, err = g.load(ctx, r, tk, hit, e); err != nil {
			return nil, err
		}
	}
	if !e.state.InTier || e.state.Blacklisted || e.err != nil {
		return g.rebind(ctx, r)
	}
	return &Admitted{Account: e.acct, State: e.state}, nil
}

// merged takes the quota place in a run shared with the key's other
// admissions of the moment. Its own frame: the script's round trip runs
// below it (the request goroutine's stack stays small, DESIGN.md); the
// answer is handled in mergedAnswer's, so this one holds only the call.
func (g *Gate) merged(ctx context.Context, r *Request, tk *Ticket) error {
	res, err := g.cfg.Limiter.AdmitMerged(ctx, *r.Quota)
	return g.mergedAnswer(tk, res, err)
}

func (g *Gate) mergedAnswer(tk *Ticket, res *ratelimit.Result, err error) error {
	if err != nil {
		if res != nil && res.ID != "" { // the run may have taken the place with its answer lost
			g.giveBack(func(ctx context.Context) error { return g.cfg.Limiter.Abandon(ctx, *res) })
		}
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return g.hold(tk, res)
}

// rebind moves a key whose bound account was blacklisted or removed.
func (g *Gate) rebind(ctx context.Context, r *Request) (*Admitted, error) {
	acct, err := r.Bind(ctx)
	if err != nil {
		return nil, err
	}
	r.Account = acct
	ad := &Admitted{}
	if ad.Account, err = g.cfg.Accounts.Get(ctx, acct); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	return ad, nil
}

// load takes the quota place and, when the account is not cached, reads
// its record and pool state, all in one pipelined round trip.
func (g *Gate) load(ctx context.Context, r *Request, tk *Ticket, hit bool, e *acctEntry) (*acctEntry, error) {
	var gen cache.Fill
	if !hit {
		gen = g.cache.Begin()
	}
	var pending *ratelimit.Pending
	var acctCmd *redis.MapStringStringCmd
	var stateCmds accounts.StateCmds
	err := g.cfg.Pipeline(ctx, func(pipe redis.Pipeliner) {
		if r.Quota != nil {
			pending = g.cfg.Limiter.QueueAdmit(ctx, pipe, *r.Quota)
		}
		if !hit {
			acctCmd = g.cfg.Accounts.QueueGet(ctx, pipe, r.Account)
			stateCmds = g.cfg.Pool.QueueState(ctx, pipe, r.Tier, r.Account)
		}
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
		if err := g.hold(tk, &res); err != nil {
			return nil, err
		}
	}
	if hit {
		return e, nil
	}
	state, err := stateCmds.Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if err := acctCmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	acct, aerr := accounts.FromHash(r.Account, acctCmd.Val())
	e = &acctEntry{acct: acct, state: state, err: aerr}
	g.cache.Put(r.Tier+"/"+r.Account, gen, e)
	return e, nil
}

// hold puts the quota's answer on the ticket; a refusal is ErrQuota.
func (g *Gate) hold(tk *Ticket, res *ratelimit.Result) error {
	tk.HoldQuota(res, g)
	if !res.Allowed {
		return ErrQuota
	}
	return nil
}

// Refund gives a place back (the ticket's refunder): at once, and when
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
