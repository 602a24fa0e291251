package admission

import (
	"context"
	"math"
	"sync"
)

// Hold is one request body's bytes in a Budget, taken as they arrive
// rather than as announced: a body declaring 32 MiB and sending one byte
// holds one step of room, not 32 MiB. Its reader grows it before each
// read (Step says by how much) and the request's end releases it.
type Hold struct {
	b   *Budget
	key string
	max int64 // never more than this (the declared length, or MAX_BODY_BYTES)

	mu       sync.Mutex
	held     int64
	released bool
}

// holdStep is the least room a hold grows by: one read's worth.
const holdStep = 64 << 10

// NewHold starts a hold for a body of key of at most max bytes; nothing is
// taken yet. A nil Budget gives a nil Hold, whose methods do nothing.
func (b *Budget) NewHold(key string, max int64) *Hold {
	if b == nil {
		return nil
	}
	return &Hold{b: b, key: key, max: max}
}

// Step is the room to hold before reading on from read bytes: one step
// past them (64 KiB, or an eighth of what was read, whichever is more, so
// a large body takes a few dozen steps and holds at most about 12 % more
// than it has read), never past max.
func (h *Hold) Step(read int64) int64 {
	if h == nil {
		return 0
	}
	step := int64(holdStep)
	if read/8 > step {
		step = read / 8
	}
	to := read + step
	if to > h.max {
		to = h.max
	}
	return to
}

// Room is how many bytes may be read on from read without growing the
// hold: unbounded (math.MaxInt64) once the hold has reached the body's
// maximum (the reader's own limit refuses the excess), else what is held
// past read (≤ 0: grow first).
func (h *Hold) Room(read int64) int64 {
	if h == nil {
		return math.MaxInt64
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held >= h.max {
		return math.MaxInt64
	}
	return h.held - read
}

// TryGrow holds to bytes in all when they may be taken now.
func (h *Hold) TryGrow(to int64) bool {
	if h == nil {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	more := to - h.held
	if more <= 0 || h.released {
		return true
	}
	if _, ok := h.b.TryAcquire(h.key, more); !ok {
		return false
	}
	h.held = to
	return true
}

// Grow holds to bytes in all, waiting for room until ctx ends (its error)
// or the key is over its share while another key waits (ErrOverShare).
func (h *Hold) Grow(ctx context.Context, to int64) error {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	more := to - h.held
	h.mu.Unlock()
	if more <= 0 {
		return nil
	}
	// Only the body's reader grows a hold, so nothing else changes held
	// meanwhile; the lock guards against a Release racing the wait.
	n, err := h.b.Acquire(ctx, h.key, more)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		h.b.Release(h.key, n)
		return nil
	}
	h.held += n
	return nil
}

// Held is the bytes held now.
func (h *Hold) Held() int64 {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// Release gives every byte back; later calls and grows do nothing.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return
	}
	h.released = true
	h.b.Release(h.key, h.held)
	h.held = 0
}
