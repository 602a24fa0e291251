package admission

import (
	"container/list"
	"context"
	"sync"
)

// Budget is a process-wide budget of request-body bytes in flight
// (MAX_INFLIGHT_BODY_BYTES): a weighted semaphore, first come first served,
// so one flood of large bodies cannot take the process's memory, and a
// large request is not starved by a stream of small ones.
type Budget struct {
	mu      sync.Mutex
	size    int64
	cur     int64
	waiters list.List // of *waiter
}

type waiter struct {
	n     int64
	ready chan struct{}
}

// NewBudget returns a budget of size bytes; size ≤ 0 means no limit (nil).
func NewBudget(size int64) *Budget {
	if size <= 0 {
		return nil
	}
	return &Budget{size: size}
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

// TryAcquire takes n bytes (clamped as Acquire does) when they fit now
// and nobody waits; ok is false otherwise, with nothing taken. The common
// case costs a lock, not the context and timer a wait needs.
func (b *Budget) TryAcquire(n int64) (held int64, ok bool) {
	if b == nil || n <= 0 {
		return 0, true
	}
	n = b.clamp(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.takeLocked(n) {
		return n, true
	}
	return 0, false
}

// takeLocked takes n when it fits now and nobody waits (first come, first
// served). b.mu is held.
func (b *Budget) takeLocked(n int64) bool {
	if b.size-b.cur >= n && b.waiters.Len() == 0 {
		b.cur += n
		return true
	}
	return false
}

// Acquire takes n bytes, waiting in line until they are free or ctx ends
// (then it returns ctx's error and holds nothing). It returns the amount
// to Release. A nil Budget admits everything.
func (b *Budget) Acquire(ctx context.Context, n int64) (int64, error) {
	if b == nil || n <= 0 {
		return 0, nil
	}
	n = b.clamp(n)
	b.mu.Lock()
	if b.takeLocked(n) {
		b.mu.Unlock()
		return n, nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while giving up: give it back.
			b.cur -= n
			b.notify()
		default:
			front := b.waiters.Front() == elem
			b.waiters.Remove(elem)
			if front {
				// Those behind may fit now.
				b.notify()
			}
		}
		b.mu.Unlock()
		return 0, ctx.Err()
	}
}

// Release gives back n bytes (what Acquire returned).
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	b.cur -= n
	if b.cur < 0 {
		b.mu.Unlock()
		panic("admission: budget released more than held")
	}
	b.notify()
	b.mu.Unlock()
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

// Waiting is the number of requests waiting for room (metrics, tests).
func (b *Budget) Waiting() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiters.Len()
}

// notify grants waiters in order while they fit. Caller holds mu.
func (b *Budget) notify() {
	for {
		e := b.waiters.Front()
		if e == nil {
			return
		}
		w := e.Value.(*waiter)
		if b.size-b.cur < w.n {
			return
		}
		b.cur += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}
