package admission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/claude-route/claude-route/concurrency"
	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/spend"
)

// Request is one customer request to admit.
type Request struct {
	// Key is the client key as presented (x-api-key or Bearer).
	Key string
	// Counted: the request takes a quota place and a concurrency place
	// (POST /v1/messages). count_tokens is not counted: it has its own
	// per-key bucket instead.
	Counted bool
	// Body reads the body once the key is known and holds its place.
	Body BodyReader
	// BodyMax is the most the body may take in the process's body budget
	// (its declared length, or the size limit); ≤ 0: it takes none.
	BodyMax int64
}

// BodyReader reads a request's body for the admission: after the key
// check and the concurrency place, so a flood of large bodies on one key
// waits in its queue instead of in memory. Its bytes take room in hold as
// they arrive (nil: no budget); the admission owns hold and gives it back
// however the request ends, a panic in the reader included. It returns
// the model the body asks for (tier rules, family, quota).
type BodyReader interface {
	ReadBody(ctx context.Context, c *Caller, hold *Hold) (model string, err error)
}

// Admit admits one request, in this order: the key (format, record and
// binding, cached, else one round trip that also enters the key's
// concurrency queue), its concurrency place (a wait in its queue when the
// key is at its tier's limit), the body (r.Body), the tier's model rules,
// the key's budget, and its binding, quota place and account (one round
// trip, or none when the account is cached and the limiter answers from memory).
//
// A refusal is a *Refusal, and whatever was taken for the request is
// given back before Admit returns. An admitted request's Admission holds
// the places; its Count, Refund and Release are the only ways to end it.
func (g *Gate) Admit(ctx context.Context, r Request) (*Admission, error) {
	a := &Admission{gate: g}
	done := false
	defer func() {
		if !done { // a panic below: nothing the request took stays taken
			a.Release()
		}
	}()
	err := g.admit(ctx, r, a)
	done = true
	if err != nil {
		a.Release()
		return nil, a.refusal(err)
	}
	return a, nil
}

func (g *Gate) admit(ctx context.Context, r Request, a *Admission) error {
	c := &a.Caller
	entry, err := g.authenticate(ctx, r.Key, c, r.Counted)
	if err != nil {
		return err
	}
	if !r.Counted && !g.counts.allow(c.Hash) {
		return &Refusal{Kind: TooMany, RetryAfter: time.Second,
			Msg: fmt.Sprintf("Too many count_tokens requests for this key (more than %d a second)", countTokensRate)}
	}
	if entry != nil {
		lease, err := g.takeLease(ctx, c, entry)
		if err != nil {
			return err
		}
		a.holdLease(lease)
	}
	var hold *Hold
	if r.BodyMax > 0 {
		hold = g.cfg.Bodies.NewHold(c.Hash, r.BodyMax)
		a.holdBody(hold)
	}
	model, err := r.Body.ReadBody(ctx, c, hold)
	if err != nil {
		return &Refusal{Kind: BodyRefused, Msg: "the request body was refused", Cause: err}
	}
	a.Family = g.cfg.Tiers.FamilyOf(model)
	if !c.Tier.Allows(a.Family) {
		return refuse(ModelRefused, ModelRefusal(c.Tier))
	}
	if !r.Counted {
		return g.place(ctx, a, nil)
	}
	if err := g.checkBudget(ctx, c); err != nil {
		return err
	}
	limit, ok := c.Tier.Quota(a.Family)
	if !ok {
		return g.place(ctx, a, nil)
	}
	q := ratelimit.Request{Subject: c.Hash, Family: a.Family, Limit: limit, Window: g.Window()}
	return g.place(ctx, a, &q)
}

// Window is the quota window of the tier table in service.
func (g *Gate) Window() time.Duration { return time.Duration(g.cfg.Tiers.Load().Window) }

// takeLease finishes the key's concurrency entry: at once when the key is
// under its tier's concurrency, else after a first-come-first-served wait
// of up to QUEUE_WAIT. A streamed request that waits has sent nothing.
func (g *Gate) takeLease(ctx context.Context, c *Caller, entry *concurrency.Entry) (*concurrency.Lease, error) {
	n := c.Tier.MaxConcurrent()
	if n == 0 {
		n = math.MaxInt32 // no limit: the lease still tracks the request
	}
	lease, err := entry.Admit(ctx, n)
	switch {
	case err == nil:
		return lease, nil
	case errors.Is(err, concurrency.ErrQueueFull), errors.Is(err, concurrency.ErrWaitTimeout):
		return nil, &Refusal{Kind: TooMany, Unread: true, RetryAfter: time.Second, Cause: err,
			Msg: fmt.Sprintf("Too many concurrent requests for this key (%d)", n)}
	case ctx.Err() != nil:
		return nil, &Refusal{Kind: ClientGone, Unread: true, Msg: "the client left", Cause: err}
	default:
		rf := storeDown(err)
		rf.Unread = true
		return nil, rf
	}
}

// checkBudget refuses a key whose day or week budget is spent, naming the
// budget and its reset (waiting seconds does not help). A key without
// budgets costs nothing here; one with budgets one read.
func (g *Gate) checkBudget(ctx context.Context, c *Caller) error {
	lim := c.Budgets()
	if g.cfg.Spend == nil || lim == (spend.Limits{}) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.StoreBudget)
	defer cancel()
	sp, err := g.cfg.Spend.Spent(ctx, c.Hash)
	if err != nil {
		return storeDown(err)
	}
	r := spend.Over(sp, lim)
	if r == nil {
		return nil
	}
	return &Refusal{Kind: BudgetSpent, NoRetry: true, RetryAfter: r.Reset.Sub(g.cfg.Clock.Now()),
		Msg: "Budget exceeded: this key's " + r.Error(), Cause: r}
}

// refusal completes a refusal with what the request had come to (its
// caller, family and quota, after Release gave its place back); any other
// error is the store's.
func (a *Admission) refusal(err error) *Refusal {
	var rf *Refusal
	switch {
	case errors.As(err, &rf):
	case errors.Is(err, ErrQuota):
		q := a.Quota()
		rf = &Refusal{Kind: QuotaUsed, NoRetry: true, RetryAfter: q.RetryAfter, Cause: err,
			Msg: fmt.Sprintf("Rate limit exceeded for %s (%d/%d in %s)", a.Family, q.Count, q.Limit, windowText(a.gate.Window()))}
	default:
		rf = storeDown(err)
	}
	if a.Caller.Tier != nil {
		rf.Caller = &a.Caller
	}
	rf.Family, rf.Quota = a.Family, a.Quota()
	return rf
}

func windowText(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return d.String()
}
