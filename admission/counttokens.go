package admission

import (
	"sync"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// count_tokens is free for a customer: never counted against a quota and
// never holding a concurrency place (editor clients fire dozens at start-up,
// and 40 at once on a trial key got 32 × 429). It stays authenticated and
// is bounded on its own, per key and replica, by a token bucket no client
// would meet: countTokensRate a second sustained, countTokensBurst at once.
const (
	countTokensRate  = 20
	countTokensBurst = 200
)

// countBuckets are the keys' count_tokens buckets on this replica.
type countBuckets struct {
	clock clock.Clock
	mu    sync.Mutex
	m     map[string]*countBucket
}

type countBucket struct {
	tokens float64
	at     time.Time
}

// sweepBucketsAt bounds the map: above it, full buckets (keys idle for
// burst/rate seconds) are forgotten first.
const sweepBucketsAt = 4096

func newCountBuckets(c clock.Clock) *countBuckets {
	return &countBuckets{clock: c, m: map[string]*countBucket{}}
}

// allow takes one token of key's bucket; false when it is empty.
func (cb *countBuckets) allow(key string) bool {
	now := cb.clock.Now()
	cb.mu.Lock()
	defer cb.mu.Unlock()
	b := cb.m[key]
	if b == nil {
		if len(cb.m) >= sweepBucketsAt {
			for k, old := range cb.m {
				if old.fill(now) >= countTokensBurst {
					delete(cb.m, k)
				}
			}
		}
		b = &countBucket{tokens: countTokensBurst, at: now}
		cb.m[key] = b
	}
	if b.fill(now) < 1 {
		return false
	}
	b.tokens--
	return true
}

// fill adds the tokens earned since the bucket was last seen.
func (b *countBucket) fill(now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		b.tokens += d.Seconds() * countTokensRate
		if b.tokens > countTokensBurst {
			b.tokens = countTokensBurst
		}
		b.at = now
	}
	return b.tokens
}
