// Package cache keeps what the request path reads on every request (a
// client key's record and binding, an account's credential and pool state)
// in process memory for a short time, so that a bound key's request costs
// no Redis read at all.
//
// The contract is bounded staleness: an entry is served for at most TTL
// after it was read from Redis (CACHE_TTL, default 1 s), and a replica
// drops its own entries at once when it writes what they hold. A change
// made on another replica (a revocation, a blacklist, a new token) is
// therefore seen by every replica within TTL. That is the whole price of
// the cache, and the request path is built to tolerate it: a stale token
// or pool state costs at most one upstream answer that the relay already
// handles (401 → re-read, 429 → overflow).
//
// An entry's life counts from the moment its read began (Begin), not from
// when it was stored: a write that lands at time W is therefore seen by
// every replica at W+TTL at the latest, which is what lets an operator's
// revocation wait TTL and then say it holds everywhere. A fill that started
// before a local Drop or Flush is discarded (the generation check), so a
// read racing a local write cannot put the old value back.
package cache

import (
	"sync"
	"time"
)

// maxEntries bounds the map: past it, expired entries are swept, and if
// that frees nothing the map starts over (the cache is an optimisation;
// losing it costs one read per key).
const maxEntries = 1 << 16

// Map is a TTL cache of V by string key. The zero value is unusable; use
// New. A Map with TTL 0 caches nothing.
type Map[V any] struct {
	ttl time.Duration
	now func() time.Time

	mu  sync.RWMutex
	m   map[string]entry[V]
	gen uint64 // bumped by every Drop and Flush
}

type entry[V any] struct {
	v     V
	until time.Time
}

// New returns a Map whose entries live for ttl on the wall clock. The
// cache deliberately ignores the service's injectable clock: staleness is
// about real time passing between replicas, not about quota windows.
func New[V any](ttl time.Duration) *Map[V] {
	return &Map[V]{ttl: ttl, now: time.Now, m: map[string]entry[V]{}}
}

// TTL is how long an entry lives; 0 when the Map caches nothing.
func (c *Map[V]) TTL() time.Duration {
	if !c.On() {
		return 0
	}
	return c.ttl
}

// On reports whether the Map caches at all.
func (c *Map[V]) On() bool { return c != nil && c.ttl > 0 }

// Get returns the live entry for k.
func (c *Map[V]) Get(k string) (V, bool) {
	var zero V
	if !c.On() {
		return zero, false
	}
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.until) {
		return zero, false
	}
	return e.v, true
}

// Fill is a read in progress: Begin it before reading, Put with it after.
type Fill struct {
	gen uint64
	at  time.Time
}

// Begin starts a fill.
func (c *Map[V]) Begin() Fill {
	if !c.On() {
		return Fill{}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Fill{gen: c.gen, at: c.now()}
}

// Put stores v for k, to live TTL from when its read began, unless a Drop
// or Flush happened since: then v may predate a write, and the next
// request reads afresh.
func (c *Map[V]) Put(k string, f Fill, v V) {
	if !c.On() {
		return
	}
	until := f.at.Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.gen != c.gen {
		return
	}
	if len(c.m) >= maxEntries {
		c.sweepLocked()
	}
	c.m[k] = entry[V]{v: v, until: until}
}

func (c *Map[V]) sweepLocked() {
	now := c.now()
	for k, e := range c.m {
		if !now.Before(e.until) {
			delete(c.m, k)
		}
	}
	if len(c.m) >= maxEntries {
		c.m = map[string]entry[V]{}
	}
}

// Drop forgets k (its value is being changed) and voids fills in flight.
func (c *Map[V]) Drop(k string) {
	if !c.On() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, k)
}

// Flush forgets everything and voids fills in flight.
func (c *Map[V]) Flush() {
	if !c.On() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
}

// Len is the number of entries held, live or not yet swept (tests, metrics).
func (c *Map[V]) Len() int {
	if !c.On() {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
