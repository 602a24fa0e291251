package accounts

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// BindingRestore is one binding sync brings back from the ledger.
type BindingRestore struct {
	KeyHash, Tier, Account string
	Slots                  int
}

// RestoreBindings is RestoreBinding for many keys: the same script, sent
// in pipelined batches (a sync after a flush restores every binding of
// the ledger; one round trip each took most of its time at 100,000 keys).
// It returns how many bindings were written.
func (p *Pool) RestoreBindings(ctx context.Context, rs []BindingRestore) (int, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	if err := bindScript.Load(ctx, p.rdb).Err(); err != nil {
		return 0, fmt.Errorf("restore bindings: %w", err)
	}
	keys := []string{keyBind, keyUsed, keyBL, keyLimited, "", keyGone, keyCool, keyUtil}
	n := 0
	// 100 scripts a pipeline: its replies are read under the client's
	// 400 ms read timeout, which a loaded store must still meet.
	const batch = 100
	for start := 0; start < len(rs); start += batch {
		chunk := rs[start:min(start+batch, len(rs))]
		cmds := make([]*redis.Cmd, len(chunk))
		now := p.clock.Now()
		_, err := p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, r := range chunk {
				if r.Account == "" {
					continue
				}
				ks := append([]string(nil), keys...)
				ks[4] = keyTier(r.Tier)
				cmds[i] = bindScript.EvalSha(ctx, pipe, ks, r.KeyHash, r.Slots, now.Unix(), r.Account, "1", int64(0), now.UnixMilli())
			}
			return nil
		})
		// The script's refusals are values, not errors: any error is real.
		if err != nil {
			return n, fmt.Errorf("restore bindings: %w", err)
		}
		for i, c := range cmds {
			if c == nil {
				continue
			}
			res, err := c.Slice()
			if err != nil {
				return n, fmt.Errorf("restore binding: %w", err)
			}
			// Refusals (bound meanwhile, full, unknown, blacklisted)
			// bind afresh on the key's next request, as RestoreBinding.
			if _, err := p.bindQuiet(res, chunk[i]); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// bindQuiet reads a bind script's answer like bindAnswer, without its
// per-key log line (a sync restores thousands).
func (p *Pool) bindQuiet(res []any, r BindingRestore) (Binding, error) {
	if len(res) > 0 && res[0] == "ok" {
		if res[3].(int64) != 1 {
			return Binding{}, errAlreadyBound
		}
		return Binding{Account: res[1].(string), Used: int(res[2].(int64)), Slots: r.Slots, New: true}, nil
	}
	return Binding{}, fmt.Errorf("not restored: %v", res)
}
