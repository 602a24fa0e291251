package admission

import (
	"context"
	"sync"

	"github.com/claude-route/claude-route/ratelimit"
)

// Lease is a key's concurrency place (concurrency.Lease is one).
type Lease interface {
	Release(ctx context.Context)
}

// Refunder gives a quota place back (ratelimit.Limiter is one).
type Refunder interface {
	Refund(ctx context.Context, res ratelimit.Result) error
}

// Ticket is what admission holds for one request: the key's concurrency
// lease, the request body's bytes in the process's budget and its quota
// place. Three calls end it, and nothing else does: Count when an answer
// was produced (or the client abandoned it: the place is used), Refund
// when none was, and Release when the request ends, however it ends
// (answer, refusal, client gone, panic, shutdown). Release gives back the
// lease and the bytes, and the quota place too when neither Count nor
// Refund settled it: a request that never reached a verdict (a panic)
// produced no answer. Each happens at most once.
type Ticket struct {
	mu       sync.Mutex
	lease    Lease
	body     *Hold
	quota    *ratelimit.Result
	refunder Refunder
	counted  bool
	released bool
}

// HoldLease puts the key's concurrency lease on the ticket (nil: none).
func (t *Ticket) HoldLease(l Lease) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lease = l
}

// HoldBody puts the body's bytes (taken as they arrive) on the ticket.
func (t *Ticket) HoldBody(h *Hold) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.body = h
}

// HoldQuota puts the quota result on the ticket; q is shared with the
// caller, who reads it for the x-ratelimit-* headers, and a refund updates
// it in place.
func (t *Ticket) HoldQuota(q *ratelimit.Result, r Refunder) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.quota, t.refunder = q, r
}

// Quota is the quota result on the ticket (nil when the request is not
// counted): what the x-ratelimit-* headers show.
func (t *Ticket) Quota() *ratelimit.Result {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.quota
}

// Count settles the quota place as used: an answer was produced, or the
// client abandoned the request. Release then keeps it.
func (t *Ticket) Count() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counted = true
}

// Refund gives the quota place back, once, when one was taken and not
// counted. It reports whether a place went back.
func (t *Ticket) Refund(ctx context.Context) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.refundLocked(ctx)
}

func (t *Ticket) refundLocked(ctx context.Context) (bool, error) {
	if t.counted || t.quota == nil || !t.quota.Allowed || t.refunder == nil {
		return false, nil
	}
	if err := t.refunder.Refund(ctx, *t.quota); err != nil {
		return false, err
	}
	t.quota.Remaining++
	t.quota.Allowed = false // refunded once only
	return true, nil
}

// Release gives back the lease and the body bytes, and the quota place
// when it was neither counted nor refunded; later calls do nothing.
func (t *Ticket) Release(ctx context.Context) {
	t.mu.Lock()
	if t.released {
		t.mu.Unlock()
		return
	}
	t.released = true
	_, _ = t.refundLocked(ctx) // a refunder that fails retries by itself (Gate.Refund)
	lease, body := t.lease, t.body
	t.mu.Unlock()
	body.Release()
	if lease != nil {
		lease.Release(ctx)
	}
}
