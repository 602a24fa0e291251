package syncer

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/keys"
)

// KeyRecords reads key records in bulk (keys.Store).
type KeyRecords interface {
	Records(ctx context.Context, hashes []string) (map[string]keys.Record, error)
}

// Expirer gives a bound key's slot back at the moment the key expires (or
// is found revoked), rather than at the next full sync hours later. It
// sleeps until the earliest expiry among bound keys, and at most MaxWait,
// so that keys bound meanwhile are seen too.
type Expirer struct {
	Pool    Pool
	Keys    KeyRecords
	Clock   clock.Clock
	Log     logrus.FieldLogger
	MaxWait time.Duration // default 1 minute
	// OnSweep, if set, is told how many slots each sweep freed (tests,
	// metrics).
	OnSweep func(freed int, err error)
}

// Sweep frees the slots of bound keys that are expired or revoked at the
// clock's now, and returns the earliest future expiry of a bound key
// (zero when none).
func (x *Expirer) Sweep(ctx context.Context) (freed int, next time.Time, err error) {
	hashes, ledgerNext, narrowed, err := x.candidates(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("expiry sweep: %w", err)
	}
	recs, err := x.Keys.Records(ctx, hashes)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("expiry sweep: %w", err)
	}
	if narrowed {
		next = ledgerNext
	}
	now := x.Clock.Now()
	for _, r := range recs {
		if r.Active(now) == nil {
			if !r.Expires.IsZero() && (next.IsZero() || r.Expires.Before(next)) {
				next = r.Expires
			}
			continue
		}
		free := x.Pool.Release
		if r.Status == keys.StatusRevoked {
			free = x.Pool.Retire
		}
		ok, err := free(ctx, r.Hash)
		if err != nil {
			return freed, next, fmt.Errorf("expiry sweep: %w", err)
		}
		if ok {
			freed++
			x.Log.WithFields(logrus.Fields{"key": r.ID, "tier": r.Tier}).Infof("key %s: slot given back", r.State(now))
		}
	}
	return freed, next, nil
}

// lapsedKeys narrows a sweep to the keys the ledger, in memory, holds as
// revoked or expired (keys.Store).
type lapsedKeys interface {
	Lapsed(ctx context.Context) ([]string, time.Time, error)
}

// boundMany reads the bindings of some keys (accounts.Pool).
type boundMany interface {
	BoundMany(ctx context.Context, keyHashes []string) (map[string]string, error)
}

// candidates are the bound keys a sweep reads the records of. With the
// ledger and a pool that reads bindings by key, those are the bound ones
// among the keys the ledger holds as lapsed, and next is the ledger's next
// expiry (any key's: waking for an unbound one costs a sweep, not a
// miss); narrowed says so. Otherwise every bound key, and next comes from
// their records. At 100,000 keys reading every binding and record took
// about 100,000 Redis commands a minute.
func (x *Expirer) candidates(ctx context.Context) (hashes []string, next time.Time, narrowed bool, err error) {
	lk, ok1 := x.Keys.(lapsedKeys)
	bm, ok2 := x.Pool.(boundMany)
	if !ok1 || !ok2 {
		binds, err := x.Pool.Bindings(ctx)
		if err != nil {
			return nil, time.Time{}, false, err
		}
		for h := range binds {
			hashes = append(hashes, h)
		}
		return hashes, time.Time{}, false, nil
	}
	lapsed, next, err := lk.Lapsed(ctx)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	const chunk = 1000 // one HMGET each
	for start := 0; start < len(lapsed); start += chunk {
		part := lapsed[start:min(start+chunk, len(lapsed))]
		bound, err := bm.BoundMany(ctx, part)
		if err != nil {
			return nil, time.Time{}, false, err
		}
		for _, h := range part {
			if _, ok := bound[h]; ok {
				hashes = append(hashes, h)
			}
		}
	}
	return hashes, next, true, nil
}

// Run sweeps until ctx ends. Its waits are on the configured clock.
func (x *Expirer) Run(ctx context.Context) {
	maxWait := x.MaxWait
	if maxWait <= 0 {
		maxWait = time.Minute
	}
	for {
		freed, next, err := x.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			x.Log.WithError(err).Warn("expiry sweep failed; retrying")
		}
		if x.OnSweep != nil {
			x.OnSweep(freed, err)
		}
		wait := maxWait
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(x.Clock.Now()), 0))
		}
		fire := make(chan struct{})
		t := x.Clock.AfterFunc(wait, func() { close(fire) })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-fire:
		}
	}
}
