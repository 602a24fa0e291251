package admission

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/concurrency"
	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/spend"
)

// The admission's view of the store, declared here where it is consumed.
// The Queue* methods put their commands on a pipeline the gate sends in
// one round trip with the others of the moment (Batcher).

// Keys reads client keys' records and records new bindings (keys.Store).
type Keys interface {
	QueueGet(ctx context.Context, pipe redis.Pipeliner, hash string) *redis.MapStringStringCmd
	// PostBinding records a new binding in the ledger without waiting.
	PostBinding(tier, hash, account string) error
}

// Pool binds keys to accounts and reads accounts' pool state
// (accounts.Pool).
type Pool interface {
	QueueBound(ctx context.Context, pipe redis.Pipeliner, keyHash string) *redis.StringCmd
	QueueState(ctx context.Context, pipe redis.Pipeliner, tier, account string) accounts.StateCmds
	BindKey(ctx context.Context, keyHash, tier string, slots int, expires time.Time) (accounts.Binding, error)
	Bound(ctx context.Context, keyHash string) (string, error)
}

// Accounts reads upstream credentials (accounts.Store).
type Accounts interface {
	QueueGet(ctx context.Context, pipe redis.Pipeliner, name string) *redis.MapStringStringCmd
	Get(ctx context.Context, name string) (accounts.Account, error)
}

// Limiter takes places in the keys' windows (ratelimit.Limiter). What a
// place is made of (spares, held waits, request ids) is its own: a place
// whose answer or refund was lost it gives back by itself.
type Limiter interface {
	QueueAdmit(ctx context.Context, pipe redis.Pipeliner, r ratelimit.Request) *ratelimit.Pending
	// AdmitMerged admits in a run shared with concurrent admissions of
	// the same window.
	AdmitMerged(ctx context.Context, r ratelimit.Request) (*ratelimit.Result, error)
	Refund(ctx context.Context, res ratelimit.Result) error
	// Await waits when asking again may turn a refusal into an admission.
	Await(ctx context.Context, res ratelimit.Result, tries int) bool
	// Wait waits for the give-backs still being retried.
	Wait()
}

// Leases hand out each key's concurrency places (concurrency.Limiter);
// the entry rides in the key's pipeline, so a key under its limit costs
// no round trip of its own.
type Leases interface {
	QueueEnter(ctx context.Context, pipe redis.Pipeliner, keyHash string) *concurrency.Entry
}

// Spend reads what keys spent per UTC day and week (spend.Book).
type Spend interface {
	Spent(ctx context.Context, keyHash string) (spend.Spent, error)
}

// Batcher runs queued commands in one round trip shared with other
// requests' (store.Coalescer). An error means nothing was sent; otherwise
// each command carries its own result (read those: a shared pipeline's
// overall error may be another request's).
type Batcher interface {
	Do(ctx context.Context, queue func(redis.Pipeliner)) error
}

// Stores are the admission's collaborators in the store; Leases and
// Spend may be nil (no concurrency limits, no budgets).
type Stores struct {
	Keys     Keys
	Pool     Pool
	Accounts Accounts
	Limiter  Limiter
	Leases   Leases
	Spend    Spend
	Batch    Batcher
}
