package admission

import (
	"context"
	"sync"
	"time"

	"github.com/claude-route/claude-route/accounts"
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

// Admission is one admitted request: the key's scope and account, and
// what the admission holds for it (the key's concurrency lease, the
// body's bytes in the process's budget, its quota place). Three calls end
// it, and nothing else does: Count when an answer was produced (or the
// client abandoned it: the place is used), Refund when none was, and
// Release when the request ends, however it ends (answer, refusal, client
// gone, panic, shutdown). Release gives back the lease and the bytes, and
// the quota place too when neither Count nor Refund settled it: a request
// that never reached a verdict (a panic) produced no answer. Each happens
// at most once.
type Admission struct {
	Caller
	// Family is the body's model family (tiers.Table.FamilyOf).
	Family string
	// Account is where the request goes, and State its pool state as the
	// admission read it (a limited or cooling one is routing's to route
	// around).
	Account accounts.Account
	State   accounts.State

	gate     *Gate
	mu       sync.Mutex
	lease    Lease
	body     *Hold
	quota    ratelimit.Result
	hasQuota bool
	refunder Refunder
	counted  bool
	released bool
}

// holdLease puts the key's concurrency lease on the admission.
func (a *Admission) holdLease(l Lease) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lease = l
}

// holdBody puts the body's bytes (taken as they arrive) on the admission.
func (a *Admission) holdBody(h *Hold) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.body = h
}

// holdQuota puts the quota's answer on the admission.
func (a *Admission) holdQuota(q ratelimit.Result, r Refunder) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.quota, a.hasQuota, a.refunder = q, true, r
}

// Quota is the key's window as this request left it (nil when the
// request is not counted): what the x-ratelimit-* headers show. A refund
// updates it in place; read it on the request's own goroutine.
func (a *Admission) Quota() *ratelimit.Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.hasQuota {
		return nil
	}
	return &a.quota
}

// Count settles the quota place as used: an answer was produced, or the
// client abandoned the request. Release then keeps it.
func (a *Admission) Count() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.counted = true
}

// Refund gives the quota place back, once, when one was taken and not
// counted. It reports whether a place went back; a refund the store did
// not take is retried in the background (ratelimit.Limiter.Refund).
func (a *Admission) Refund(ctx context.Context) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refundLocked(ctx)
}

func (a *Admission) refundLocked(ctx context.Context) (bool, error) {
	if !a.refundableLocked() {
		return false, nil
	}
	if err := a.refunder.Refund(ctx, a.quota); err != nil {
		return false, err
	}
	a.quota.Remaining++
	a.quota.Allowed = false // refunded once only
	return true, nil
}

// refundableLocked: a quota place was taken and neither counted nor
// refunded yet.
func (a *Admission) refundableLocked() bool {
	return !a.counted && a.hasQuota && a.quota.Allowed && a.refunder != nil
}

// Release gives back the lease and the body bytes, and the quota place
// when it was neither counted nor refunded; later calls do nothing. It
// waits at most releaseFor for the store (a lease whose release fails
// expires within its TTL). A request that holds nothing in the store (no
// lease, its place counted) ends without a context or a timer.
func (a *Admission) Release() {
	a.mu.Lock()
	if a.released {
		a.mu.Unlock()
		return
	}
	a.released = true
	lease, body := a.lease, a.body
	var ctx context.Context
	if lease != nil || a.refundableLocked() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), releaseFor)
		defer cancel()
		_, _ = a.refundLocked(ctx) // a refunder that fails retries by itself (ratelimit.Limiter.Refund)
	}
	a.mu.Unlock()
	body.Release()
	if lease != nil {
		lease.Release(ctx)
	}
}

// releaseFor bounds the store work of a Release.
const releaseFor = 2 * time.Second

// Rebind moves the key off its account (routing found it dead) and
// returns the account it is bound to now.
func (a *Admission) Rebind(ctx context.Context) (accounts.Account, error) {
	if err := a.gate.bind(ctx, &a.Caller); err != nil {
		return accounts.Account{}, a.refusal(err)
	}
	acct, err := a.gate.cfg.Accounts.Get(ctx, a.Caller.Account)
	if err != nil {
		return accounts.Account{}, a.refusal(storeDown(err))
	}
	return acct, nil
}
