package route

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/relay"
)

// overflow moves the request to another usable account of the tier, at
// most once and only when the tier allows it; the binding does not change
// and no slot is taken. What the failed attempt taught (a limit, a
// failure) is recorded on the account it leaves in the same atomic step.
// It reports whether c now holds another account.
func (r *Router) overflow(ctx context.Context, c *call, att relay.Attempt) bool {
	mark := accounts.OverflowMark{LimitedUntil: att.LimitedUntil, Failure: att.Failure, By: c.Key}
	from := c.acct.Name
	if c.overflowed || !c.Overflows {
		r.settleAccount(from, mark)
		return false
	}
	c.overflowed = true
	to, acct, err := r.chooseOverflow(ctx, c.Tier, from, mark)
	r.d.Forget() // the choice marked the account it left
	if err == nil {
		c.acct = acct
		if r.d.Metrics != nil {
			r.d.Metrics.Overflowed(c.Tier, att.Reason)
		}
		r.d.Log.WithFields(c.logFields()).WithField("from", from).WithField("to", to).WithField("reason", att.Reason).
			Info("overflow: serving this request from another account of the tier")
		return true
	}
	if !errors.Is(err, accounts.ErrNoOverflow) {
		r.d.Log.WithFields(c.logFields()).WithField("account", from).WithError(err).Warn("overflow failed")
		r.settleAccount(from, mark) // the script may not have run
	}
	return false
}

// chooseOverflow runs the overflow choice and, in the same round trip,
// reads the records of the tier's other accounts as the last overflow saw
// them; only an account that joined the tier since costs a second trip.
func (r *Router) chooseOverflow(ctx context.Context, tier, from string, mark accounts.OverflowMark) (string, accounts.Account, error) {
	pipe := r.d.Redis.Pipeline()
	choice := r.d.Pool.QueueOverflow(ctx, pipe, tier, from, mark)
	pre := map[string]*redis.MapStringStringCmd{}
	for _, name := range r.peers.get(tier) {
		if name != from {
			pre[name] = r.d.Accounts.QueueGet(ctx, pipe, name)
		}
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	to, peers, err := choice.Result()
	if peers != nil {
		r.peers.set(tier, append(peers, from))
	}
	if err != nil {
		return "", accounts.Account{}, err
	}
	if cmd, ok := pre[to]; ok && cmd.Err() == nil {
		if acct, err := accounts.FromHash(to, cmd.Val()); err == nil {
			return to, acct, nil
		}
	}
	acct, err := r.d.Accounts.Get(ctx, to)
	return to, acct, err
}

// tierPeers is the accounts of each tier as the last overflow saw them.
type tierPeers struct {
	mu sync.Mutex
	m  map[string][]string
}

func (p *tierPeers) get(tier string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[tier]
}

func (p *tierPeers) set(tier string, names []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string][]string{}
	}
	p.m[tier] = names
}

// background runs an account write off the response path; Wait awaits it.
func (r *Router) background(name, what string, do func(ctx context.Context) error) {
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := do(ctx); err != nil {
			r.d.Log.WithField("account", name).WithError(err).Warn(what)
		}
		r.d.Forget()
	}()
}

// settleAccount records what an attempt taught about an account that is
// not overflowed from: a usage limit or one failure towards cooling.
//
// A limit is recorded before the client is answered: its next request must
// find the account limited and be told to wait, not sent upstream again (a
// replica's own change applies at once). Written in the background, it
// could land after that next request's admission read the account. A
// failure only counts towards cooling, off the response path.
func (r *Router) settleAccount(name string, mark accounts.OverflowMark) {
	if !mark.LimitedUntil.IsZero() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := r.d.Pool.Limit(ctx, name, mark.LimitedUntil)
		cancel()
		r.d.Forget()
		if err != nil {
			r.d.Log.WithField("account", name).WithError(err).Warn("could not record the account's limit")
		}
	}
	if mark.Failure {
		r.background(name, "could not record the account's failure", func(ctx context.Context) error {
			_, err := r.d.Pool.Fail(ctx, name, mark.By)
			return err
		})
	}
}

// succeeded ends the account's run of failures, off the response path and
// only when one may exist: the bound account's state (read in admission)
// showed failures, or the request overflowed to an account whose state was
// not read. A healthy bound account costs nothing.
func (r *Router) succeeded(c *call) {
	if c.acct.Name == c.bound && c.state.Fails == 0 {
		return
	}
	name := c.acct.Name
	r.background(name, "could not reset the account's failures", func(ctx context.Context) error {
		return r.d.Pool.Succeeded(ctx, name)
	})
}

// observe hands the answer's rate-limit headers to the utilization
// writer, which parses the latest of each interval and stores it in the
// background.
func (r *Router) observe(account string, h http.Header) {
	if r.d.Util != nil {
		r.d.Util.ObserveHeaders(account, h, r.d.Clock.Now())
	}
}
