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
// place. The handler settles it: Refund when no answer was produced,
// Release when the request ends, however it ends. Each happens once.
type Ticket struct {
	mu       sync.Mutex
	lease    Lease
	body     *Hold
	quota    *ratelimit.Result
	refunder Refunder
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

// Refund gives the quota place back, once, when one was taken. It reports
// whether a place went back.
func (t *Ticket) Refund(ctx context.Context) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.quota == nil || !t.quota.Allowed || t.refunder == nil {
		return false, nil
	}
	if err := t.refunder.Refund(ctx, *t.quota); err != nil {
		return false, err
	}
	t.quota.Remaining++
	t.quota.Allowed = false // refunded once only
	return true, nil
}

// Release gives back the lease and the body bytes; later calls do nothing.
func (t *Ticket) Release(ctx context.Context) {
	t.mu.Lock()
	if t.released {
		t.mu.Unlock()
		return
	}
	t.released = true
	lease, body := t.lease, t.body
	t.mu.Unlock()
	body.Release()
	if lease != nil {
		lease.Release(ctx)
	}
}
