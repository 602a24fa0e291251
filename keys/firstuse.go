package keys

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// activateScript starts a not-activated key's validity: when the record
// waits for its first use (first_use > 0, expires 0) it sets expires to
// ARGV[1] + first_use and clears first_use, in one step, so concurrent
// first requests on several replicas activate it once. It answers the
// record's expiry in ms afterwards (0: never) and whether this call
// activated it.
var activateScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'first_use', 'expires', 'status')
if not f[3] then return {-1, 0} end
local fu = tonumber(f[1] or '0') or 0
local exp = tonumber(f[2] or '0') or 0
if fu <= 0 or exp ~= 0 or f[3] ~= 'active' then return {exp, 0} end
exp = tonumber(ARGV[1]) + fu
redis.call('HSET', KEYS[1], 'expires', exp, 'first_use', 0)
return {exp, 1}
`)

// Activate starts the validity of a key that waits for its first use, at
// at; a key already activated (or never waiting) is left alone. It returns
// the key's expiry and whether this call activated it. The ledger records
// the activation through its writer (it survives a flush once written, and
// sync's Reconcile copies it from Redis if that write was lost).
func (s *Store) Activate(ctx context.Context, hash string, at time.Time) (time.Time, bool, error) {
	vals, err := activateScript.Run(ctx, s.rdb, []string{recordKey(hash)}, toMillis(truncMillis(at))).Int64Slice()
	if err != nil {
		return time.Time{}, false, fmt.Errorf("keys: activate %s: %w", ID(hash), err)
	}
	if len(vals) != 2 || vals[0] < 0 {
		return time.Time{}, false, fmt.Errorf("keys: activate %s: %w", ID(hash), ErrNotFound)
	}
	exp := fromMillis(vals[0])
	if vals[1] != 1 {
		return exp, false, nil
	}
	if err := s.ledger.Post(Change{Op: OpActivate, Hash: hash, Expires: exp, At: truncMillis(at)}); err != nil {
		return exp, true, fmt.Errorf("keys: activate %s: ledger: %w", ID(hash), err)
	}
	return exp, true, nil
}
