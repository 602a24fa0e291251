package admission

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/claude-route/claude-route/accounts"
)

// bind binds (or rebinds) the caller's key to an account of its tier and
// sets c.Account. A new binding is posted to the ledger, the durable
// record of bindings.
func (g *Gate) bind(ctx context.Context, c *Caller) error {
	prev := c.Account
	// Whatever happened, the cached binding may be out of date.
	defer g.keys.Drop(c.Hash)
	b, err := g.cfg.Pool.BindKey(ctx, c.Hash, c.Tier.Name, c.Tier.Slots, c.Rec.Expires)
	switch {
	case errors.Is(err, accounts.ErrKeyInactive):
		// Revoked or expired since authentication: the slot it held is
		// already given back and must stay so.
		return unauthorized("Unauthorized API key: key revoked or expired")
	case errors.Is(err, accounts.ErrFull):
		return &Refusal{Kind: PoolFull, Msg: fmt.Sprintf("All %s accounts are at capacity", c.Tier.Title()), Cause: err}
	case errors.Is(err, accounts.ErrEmpty):
		return &Refusal{Kind: PoolEmpty, Msg: fmt.Sprintf("No %s accounts available in pool", c.Tier.Title()), Cause: err}
	case err != nil:
		// The script may have run with its answer lost (a read timeout):
		// the binding is then in the store but not in the ledger until
		// the next sync, and a flush in that gap would lose it.
		g.postLostBinding(*c)
		return storeDown(err)
	}
	c.Account = b.Account
	if b.New {
		if prev != "" {
			g.cfg.Log.WithFields(logFields(c)).Infof("key moved from %s to %s", prev, b.Account)
		}
		g.post(c, b.Account)
	}
	return nil
}

// post posts a new binding to the ledger's writer, which commits it with
// the next batch (one append for every binding of the moment), so the
// request never waits for the disk; sync writes back any the ledger
// missed.
func (g *Gate) post(c *Caller, account string) {
	if err := g.cfg.Keys.PostBinding(c.Tier.Name, c.Hash, account); err != nil {
		g.cfg.Log.WithFields(logFields(c)).WithError(err).Warn("could not record the binding in the ledger")
	}
}

// postLostBinding reads back, in the background, the binding of a key
// whose bind failed after it may have run, and posts it to the ledger
// when the store holds one the key did not have before. The read is
// retried (a store slow enough to lose the answer may
// fail the next command too), for up to readBackFor.
func (g *Gate) postLostBinding(c Caller) {
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		wait := 50 * time.Millisecond
		for end := time.Now().Add(readBackFor); ; wait *= 2 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			acct, err := g.cfg.Pool.Bound(ctx, c.Hash)
			cancel()
			if err == nil {
				if acct != "" && acct != c.Account {
					g.cfg.Log.WithFields(logFields(&c)).Infof("binding to %s found after its answer was lost", acct)
					g.post(&c, acct)
				}
				return
			}
			if time.Now().Add(wait).After(end) {
				g.cfg.Log.WithFields(logFields(&c)).WithError(err).Warn("could not read back a binding whose answer was lost; sync will record it")
				return
			}
			time.Sleep(wait)
		}
	}()
}

func logFields(c *Caller) map[string]any {
	return map[string]any{"key": c.Rec.ID, "tier": c.Tier.Name}
}
