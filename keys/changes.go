package keys

import (
	"context"
	"errors"
)

// change1 commits one change and returns the key's ledger record after it.
// A change that names a tier the ledger does not hold the key in (Redis
// and the ledger disagree during a move) is tried once more on whichever
// tier holds it; a move always names its source.
func (s *Store) change1(ctx context.Context, c Change) (Record, error) {
	if c.At.IsZero() {
		c.At = s.now()
	}
	out, err := s.ledger.Commit(ctx, c)
	if errors.Is(err, ErrNotFound) && c.Tier != "" && c.Op != OpMove {
		c.Tier = ""
		out, err = s.ledger.Commit(ctx, c)
	}
	if err != nil {
		return Record{}, err
	}
	return out[0], nil
}

// PostBinding records a new binding in the ledger without waiting: the
// ledger's writer commits it with the next batch, well within a second,
// so a flushed store brings the key back to the same account. The request
// path calls it; the live binding is already in the pool (Redis), and sync
// writes back any binding the ledger missed.
func (s *Store) PostBinding(tier, hash, account string) error {
	return s.ledger.Post(Change{Op: OpBind, Tier: tier, Hash: hash, Account: account, At: s.now()})
}
