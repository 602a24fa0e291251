package admission

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// Budget is a process-wide budget of request-body bytes in flight
// (MAX_INFLIGHT_BODY_BYTES): a weighted semaphore, first come first served,
// so one flood of large bodies cannot take the process's memory, and a
// large request is not starved by a stream of small ones.
//
// It is shared fairly between keys: when bodies of several keys compete
// for room, a key takes no more than its fair share (the budget divided by
// the keys holding or waiting for bytes). Room nobody else waits for may be
// used beyond the share; but once another key waits for room, a key over
// its share is refused at once (ErrOverShare) instead of waiting, so its
// bytes come back and the other key is served.
type Budget struct {
	mu      sync.Mutex
	size    int64
	cur     int64
	keys    map[string]*keyUse
	waiters list.List // of *waiter, in arrival order
}

// keyUse is one key's bytes held and requests waiting; it is forgotten
// when both are zero, so the number of keys is the number of keys active.
type keyUse struct {
	held    int64
	waiting int
}

type waiter struct {
	key   string
	n     int64
	ready chan struct{}
	err   error // set before ready closes when refused rather than granted
}

// ErrOverShare refuses bytes to a key over its fair share of the budget
// while another key waits for room.
var ErrOverShare = errors.New("the key holds more than its share of the request-body budget while another key waits")

// NewBudget returns a budget of size bytes; size ≤ 0 means no limit (nil).
func NewBudget(size int64) *Budget {
	if size <= 0 {
		return nil
	}
	return &Budget{size: size, keys: map[string]*keyUse{}}
}

// Size is the budget's capacity.
func (b *Budget) Size() int64 {
	if b == nil {
		return 0
	}
	return b.size
}

// clamp: a request larger than the whole budget waits for all of it,
// rather than forever.
func (b *Budget) clamp(n int64) int64 {
	if n > b.size {
		return b.size
	}
	return n
}

// TryAcquire takes n bytes for key (clamped as Acquire does) when they
// may be taken now without waiting; ok is false otherwise, with nothing
// taken. The common case costs a lock, not the context and timer a wait
// needs.
func (b *Budget) TryAcquire(key string, n int64) (held int64, ok bool) {
	if b == nil || n <= 0 {
		return 0, true
	}
	n = b.clamp(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.use(key)
	if b.mayTakeLocked(key, u, n) {
		b.grantLocked(u, n)
		return n, true
	}
	b.forget(key, u)
	return 0, false
}

// Acquire takes n bytes for key, waiting in line until they may be taken
// or ctx ends (then it returns ctx's error and holds nothing). A key over
// its share while another key waits gets ErrOverShare at once. It returns
// the amount to Release. A nil Budget admits everything.
func (b *Budget) Acquire(ctx context.Context, key string, n int64) (int64, error) {
	if b == nil || n <= 0 {
		return 0, nil
	}
	n = b.clamp(n)
	b.mu.Lock()
	u := b.use(key)
	if b.mayTakeLocked(key, u, n) {
		b.grantLocked(u, n)
		b.mu.Unlock()
		return n, nil
	}
	if b.overShareLocked(u, n) && b.othersWaitLocked(key) {
		b.forget(key, u)
		b.mu.Unlock()
		return 0, ErrOverShare
	}
	w := &waiter{key: key, n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	u.waiting++
	// This key now waits: those over their share give their turn up.
	b.refuseOverShareLocked(key)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, w.err
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			if w.err == nil {
				// Granted while giving up: give it back.
				b.releaseLocked(key, n)
			}
		default:
			b.waiters.Remove(elem)
			u.waiting--
			b.forget(key, u)
			b.notify() // those behind may go now
		}
		b.mu.Unlock()
		return 0, ctx.Err()
	}
}

// Release gives back n bytes of key (what Acquire returned).
func (b *Budget) Release(key string, n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(key, n)
}

func (b *Budget) releaseLocked(key string, n int64) {
	u := b.keys[key]
	if u == nil || u.held < n || b.cur < n {
		panic("admission: budget released more than held")
	}
	u.held -= n
	b.cur -= n
	b.forget(key, u)
	b.notify()
}

// InUse is the number of bytes held (metrics, tests).
func (b *Budget) InUse() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

// HeldBy is the number of bytes key holds (tests).
func (b *Budget) HeldBy(key string) int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if u := b.keys[key]; u != nil {
		return u.held
	}
	return 0
}

// Waiting is the number of requests waiting for room (metrics, tests).
func (b *Budget) Waiting() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}

// use returns key's record, creating it: a key asking counts as active.
func (b *Budget) use(key string) *keyUse {
	u := b.keys[key]
	if u == nil {
		u = &keyUse{}
		b.keys[key] = u
	}
	return u
}

// forget drops an idle key's record.
func (b *Budget) forget(key string, u *keyUse) {
	if u.held == 0 && u.waiting == 0 {
		delete(b.keys, key)
	}
}

// shareLocked is each active key's fair share.
func (b *Budget) shareLocked() int64 {
	n := int64(len(b.keys))
	if n < 1 {
		n = 1
	}
	return b.size / n
}

// overShareLocked: n more would put the key over its fair share while
// other keys are active. A key holding nothing may always take its first
// bytes.
func (b *Budget) overShareLocked(u *keyUse, n int64) bool {
	return len(b.keys) > 1 && u.held > 0 && u.held+n > b.shareLocked()
}

// othersWaitLocked: a request of another key waits.
func (b *Budget) othersWaitLocked(key string) bool {
	for e := b.waiters.Front(); e != nil; e = e.Next() {
		if e.Value.(*waiter).key != key {
			return true
		}
	}
	return false
}

// mayTakeLocked: n bytes fit now, nobody within their share waits ahead
// (first come, first served), and the key stays within its share unless
// nobody else waits.
func (b *Budget) mayTakeLocked(key string, u *keyUse, n int64) bool {
	if b.size-b.cur < n {
		return false
	}
	for e := b.waiters.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		if !b.overShareLocked(b.keys[w.key], w.n) {
			return false // waits for room, ahead of this request
		}
	}
	return !b.overShareLocked(u, n) || !b.othersWaitLocked(key)
}

func (b *Budget) grantLocked(u *keyUse, n int64) {
	b.cur += n
	u.held += n
}

// refuseOverShareLocked refuses the waiting requests of other keys over
// their share: key waits now, and their bytes should go to it.
func (b *Budget) refuseOverShareLocked(key string) {
	for e := b.waiters.Front(); e != nil; {
		next := e.Next()
		w := e.Value.(*waiter)
		if u := b.keys[w.key]; w.key != key && b.overShareLocked(u, w.n) {
			b.waiters.Remove(e)
			u.waiting--
			w.err = ErrOverShare
			close(w.ready)
			b.forget(w.key, u)
		}
		e = next
	}
}

// notify grants waiters in order while they fit, skipping those over
// their share while another key waits. Caller holds mu.
func (b *Budget) notify() {
	for e := b.waiters.Front(); e != nil; {
		next := e.Next()
		w := e.Value.(*waiter)
		u := b.keys[w.key]
		if b.overShareLocked(u, w.n) && b.othersWaitLocked(w.key) {
			e = next
			continue
		}
		if b.size-b.cur < w.n {
			return
		}
		b.grantLocked(u, w.n)
		u.waiting--
		b.waiters.Remove(e)
		close(w.ready)
		e = next
	}
}
