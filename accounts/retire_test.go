package accounts

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
)

// A revoked key's in-flight request (authenticated before the revocation)
// must not take a slot back after Retire freed it; nor may an expired key
// bind. Checked in the bind script itself, against real Redis too.
func TestRetiredAndExpiredKeysCannotBind(t *testing.T) {
	for _, b := range []struct {
		name string
		rdb  func(t *testing.T) redis.UniversalClient
	}{
		{"miniredis", func(t *testing.T) redis.UniversalClient { c, _ := testenv.Mini(t); return c }},
		{"redis", func(t *testing.T) redis.UniversalClient { return testenv.Redis(t, 2) }},
	} {
		t.Run(b.name, func(t *testing.T) {
			rdb := b.rdb(t)
			p, _ := newPool(t, rdb)
			ctx := context.Background()
			addAccounts(t, p, "high", "h1")
			if _, err := p.BindKey(ctx, "k1", "high", 2, time.Time{}); err != nil {
				t.Fatal(err)
			}
			freed, err := p.Retire(ctx, "k1")
			if err != nil || !freed {
				t.Fatalf("retire = %v, %v", freed, err)
			}
			if _, err := p.BindKey(ctx, "k1", "high", 2, time.Time{}); !errors.Is(err, ErrKeyInactive) {
				t.Fatalf("a retired key bound again: %v", err)
			}
			if _, err := p.BindKey(ctx, "k2", "high", 2, t0); !errors.Is(err, ErrKeyInactive) {
				t.Fatalf("a key at its expiry bound: %v", err)
			}
			if _, err := p.BindKey(ctx, "k3", "high", 2, t0.Add(time.Millisecond)); err != nil {
				t.Fatalf("a key before its expiry: %v", err)
			}
			if used, _ := rdb.HGet(ctx, keyUsed, "h1").Int(); used != 1 {
				t.Fatalf("slots used %d, want 1 (k3 only)", used)
			}
		})
	}
}
