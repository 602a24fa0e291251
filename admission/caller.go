package admission

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/cache"
	"github.com/claude-route/claude-route/concurrency"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/spend"
	"github.com/claude-route/claude-route/tiers"
)

// Caller is the typed scope of an authenticated customer request.
type Caller struct {
	Hash string
	Rec  keys.Record
	Tier *tiers.Tier
	// Account is the key's bound account, "" when not bound yet.
	Account string
}

// Budgets are the key's spend limits: its own where it sets a window,
// else its tier's; zero: none.
func (c *Caller) Budgets() spend.Limits {
	var lim spend.Limits
	if b := c.Tier.Budgets; !b.IsZero() {
		lim = spend.Limits{DayUSD: b.DayUSD, WeekUSD: b.WeekUSD}
	}
	if own := c.Rec.Budgets; own.DayUSD > 0 {
		lim.DayUSD = own.DayUSD
	}
	if own := c.Rec.Budgets; own.WeekUSD > 0 {
		lim.WeekUSD = own.WeekUSD
	}
	return lim
}

// keyEntry is what the key cache holds: a key's record and binding as
// one read found them.
type keyEntry struct {
	rec     keys.Record
	account string
}

// Caller checks a key without entering its concurrency queue (the
// customer's own views: /v1/usage, /v1/models): its format without the
// store, then its record and binding, cached, else in one round trip.
func (g *Gate) Caller(ctx context.Context, key string) (*Caller, error) {
	c := &Caller{}
	if _, err := g.authenticate(ctx, key, c, false); err != nil {
		return nil, err
	}
	return c, nil
}

// authenticate fills c from the key, and when enter is set also enters
// the key's concurrency queue when its tier limits requests in flight
// (Admit finishes the entry). A cached key costs no read; an uncached one
// is read, with its binding, in one round trip that also carries the
// enter, so authentication and the enter never take two. A refused key's
// entry is abandoned here.
func (g *Gate) authenticate(ctx context.Context, key string, c *Caller, enter bool) (*concurrency.Entry, error) {
	if key == "" {
		return nil, unauthorized("Unauthorized API key: no key given (x-api-key or Authorization: Bearer)")
	}
	if err := keys.CheckFormat(key); err != nil {
		return nil, unauthorized("Invalid API key format: expected sk-cli-v1- followed by 32 letters or digits")
	}
	hash := keys.Hash(key)
	enter = enter && g.cfg.Leases != nil
	if e, ok := g.keys.Get(hash); ok {
		if err := g.callerOf(c, hash, e.rec, e.account); err != nil || !enter || c.Tier.MaxConcurrent() == 0 {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreBudget)
		defer cancel()
		var entry *concurrency.Entry
		if err := g.cfg.Batch.Do(ctx, func(pipe redis.Pipeliner) { entry = g.cfg.Leases.QueueEnter(ctx, pipe, hash) }); err != nil {
			return nil, storeDown(err)
		}
		return entry, nil // Admit reads the entry's own result
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreBudget)
	defer cancel()
	gen := g.keys.Begin()
	var recCmd *redis.MapStringStringCmd
	var bindCmd *redis.StringCmd
	var entry *concurrency.Entry
	err := g.cfg.Batch.Do(ctx, func(pipe redis.Pipeliner) {
		recCmd = g.cfg.Keys.QueueGet(ctx, pipe, hash)
		bindCmd = g.cfg.Pool.QueueBound(ctx, pipe, hash)
		if enter {
			entry = g.cfg.Leases.QueueEnter(ctx, pipe, hash)
		}
	})
	if err != nil { // nothing was sent
		return nil, storeDown(err)
	}
	err = g.callerRead(c, hash, gen, recCmd, bindCmd)
	if entry != nil && (err != nil || c.Tier.MaxConcurrent() == 0) {
		// The enter may have taken a place the request will not use (a
		// refused key, or a tier without a limit): give it back off the
		// answer's path.
		g.bg.Add(1)
		go func(e *concurrency.Entry) {
			defer g.bg.Done()
			actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			e.Abandon(actx)
		}(entry)
		entry = nil
	}
	return entry, err
}

// callerRead checks the record and binding the pipeline read, and caches
// them (a refusal too: a flood of requests with a revoked key costs the
// store nothing more).
func (g *Gate) callerRead(c *Caller, hash string, gen cache.Fill, recCmd *redis.MapStringStringCmd, bindCmd *redis.StringCmd) error {
	if err := recCmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return storeDown(err)
	}
	if err := bindCmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return storeDown(err)
	}
	rec, err := keys.ParseRecord(hash, recCmd.Val())
	if err != nil {
		if errors.Is(err, keys.ErrNotFound) {
			return unauthorized("Unauthorized API key")
		}
		return storeDown(err)
	}
	g.keys.Put(hash, gen, keyEntry{rec: rec, account: bindCmd.Val()})
	return g.callerOf(c, hash, rec, bindCmd.Val())
}

// callerOf checks a key's record (active, and of a tier still offered)
// and fills c from it.
func (g *Gate) callerOf(c *Caller, hash string, rec keys.Record, account string) error {
	if err := rec.Active(g.cfg.Clock.Now()); err != nil {
		if errors.Is(err, keys.ErrExpired) {
			return unauthorized("Unauthorized API key: key expired on " + rec.Expires.UTC().Format(time.RFC3339))
		}
		return unauthorized("Unauthorized API key: key revoked")
	}
	tier, ok := g.cfg.Tiers.Get(rec.Tier)
	if !ok {
		return unauthorized("Unauthorized API key: tier " + rec.Tier + " is no longer offered")
	}
	*c = Caller{Hash: hash, Rec: rec, Tier: tier, Account: account}
	return nil
}

// ForgetKey drops a key's cached record and binding: the caller changed
// one (an activation, an operator's change).
func (g *Gate) ForgetKey(hash string) { g.keys.Drop(hash) }

// KeyCacheTTL is how long a key's record may be served from memory.
func (g *Gate) KeyCacheTTL() time.Duration { return g.keys.TTL() }
