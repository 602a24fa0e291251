package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// mergeMax bounds one run: Lua's stack takes a few thousand arguments.
const mergeMax = 256

// mergeTimeout bounds a merged run's round trip: it serves several
// requests, so no one request's context may cut it short.
const mergeTimeout = 900 * time.Millisecond

// A mergeGroup is the admissions of one window waiting for, or in, a run.
// The first waiter of each run leads it, on its own goroutine: a request
// alone costs no hand-off, and under load one script admits all who
// arrived while the previous run was on the wire.
type mergeGroup struct {
	queue   []*mergeWaiter
	running bool
}

type mergeWaiter struct {
	id     string
	res    Result
	err    error
	done   chan struct{} // closed once res and err are set
	lead   chan struct{} // closed when this waiter must run the next batch
	leader bool          // lead was closed (under Limiter.mu)
}

// AdmitMerged is Admit for a request that may share its round trip with
// the concurrent admissions of the same window on this Limiter: one
// script run admits all of them, in arrival order, as many as fit, with
// the same results n separate Admits back to back would give. Nothing
// overshoots: the limit is checked in Redis, as always. A caller whose
// context ends while it waits for a run gets its error and was never
// sent. On any other error the script may have run: the limiter gives
// the place back by itself (giveback.go).
//
// While the Limiter runs (Run), a request usually finds a spare: a place
// taken for it in the background, so it is admitted without a round trip.
func (l *Limiter) AdmitMerged(ctx context.Context, r Request) (*Result, error) {
	if err := r.validate(); err != nil {
		return &Result{}, err
	}
	if res := l.takeSpare(r); res != nil {
		return res, nil
	}
	w, g, gk, lead := l.join(r)
	if !lead {
		if led, err := l.await(ctx, gk, g, w, r.Family); !led {
			return l.merged(r, w, err)
		}
	}
	l.runMerged(gk, g, r)
	<-w.done
	return l.merged(r, w, w.err)
}

// merged ends a merged admission: a place whose answer was lost goes back.
func (l *Limiter) merged(r Request, w *mergeWaiter, err error) (*Result, error) {
	l.noteAdmit(r, &w.res, err)
	if err != nil {
		l.giveBack(r.Key(), w.res.ID)
	}
	return &w.res, err
}

// join queues a waiter in its window's group; lead reports that it must
// run the next batch itself.
func (l *Limiter) join(r Request) (w *mergeWaiter, g *mergeGroup, gk string, lead bool) {
	w = &mergeWaiter{id: l.newID(), done: make(chan struct{}), lead: make(chan struct{})}
	gk = r.Key() + "\x00" + strconv.Itoa(r.Limit) + "\x00" + strconv.FormatInt(r.Window.Milliseconds(), 10)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.groups == nil {
		l.groups = map[string]*mergeGroup{}
	}
	g = l.groups[gk]
	if g == nil {
		g = &mergeGroup{}
		l.groups[gk] = g
	}
	g.queue = append(g.queue, w)
	lead = !g.running
	g.running = true
	return w, g, gk, lead
}

// await waits for a run to admit w or for the lead; led reports the lead
// (w's result is not set yet). Otherwise w's result is final, or err says
// the caller gave up before any run took it.
func (l *Limiter) await(ctx context.Context, gk string, g *mergeGroup, w *mergeWaiter, family string) (led bool, err error) {
	select {
	case <-w.done:
		return false, w.err
	case <-w.lead:
		return true, nil
	case <-ctx.Done():
		if l.leave(gk, g, w) {
			return false, fmt.Errorf("ratelimit: admit %s: %w", family, ctx.Err())
		}
		// Already taken into a run or made its leader: see it through.
		select {
		case <-w.done:
			return false, w.err
		case <-w.lead:
			return true, nil
		}
	}
}

// leave takes a waiter whose caller gave up out of the queue, handing the
// lead on if it had it; false when a run already took it.
func (l *Limiter) leave(gk string, g *mergeGroup, w *mergeWaiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(g.queue, w)
	if i < 0 {
		return false
	}
	g.queue = slices.Delete(g.queue, i, i+1)
	if w.leader {
		l.handOnLocked(gk, g)
	}
	return true
}

// handOnLocked makes the first waiter the next run's leader, or ends the
// group when nobody waits.
func (l *Limiter) handOnLocked(gk string, g *mergeGroup) {
	if len(g.queue) == 0 {
		g.running = false
		delete(l.groups, gk)
		return
	}
	next := g.queue[0]
	next.leader = true
	close(next.lead)
}

// runMerged runs one batch: everyone queued now (the leader first), up
// to mergeMax; then hands the lead to whoever came meanwhile.
func (l *Limiter) runMerged(gk string, g *mergeGroup, r Request) {
	l.mu.Lock()
	n := min(len(g.queue), mergeMax)
	batch := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	l.mu.Unlock()

	v, err := l.runMany(r, batch)
	deliver(r, batch, v, err)
	l.mu.Lock()
	l.handOnLocked(gk, g)
	l.mu.Unlock()
}

// runMany runs manyScript for the batch: one place for each waiter.
func (l *Limiter) runMany(r Request, batch []*mergeWaiter) ([]int64, error) {
	args := make([]any, 0, 3+len(batch))
	args = append(args, r.Limit, r.Window.Milliseconds(), l.nowArg())
	for _, w := range batch {
		args = append(args, w.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mergeTimeout)
	defer cancel()
	v, err := l.many.Run(ctx, l.rdb, []string{r.Key()}, args...).Int64Slice()
	if err == nil && len(v) != 5 {
		err = fmt.Errorf("script returned %d values, want 5", len(v))
	}
	return v, err
}

// deliver gives each waiter of the batch its share of the run's answer.
func deliver(r Request, batch []*mergeWaiter, v []int64, err error) {
	for i, w := range batch {
		if err != nil {
			w.res = Result{ID: w.id, Subject: r.Subject, Family: r.Family, Limit: r.Limit}
			w.err = fmt.Errorf("ratelimit: admit %s: %w", r.Family, err)
		} else {
			w.res = mergedResult(r, w.id, i, v)
		}
		close(w.done)
	}
}

// mergedResult is the i-th request's share of a run's answer.
func mergedResult(r Request, id string, i int, v []int64) Result {
	take, before, oldest, nowMS := int(v[0]), int(v[1]), v[2], v[3]
	now := time.UnixMilli(nowMS).UTC()
	res := Result{Limit: r.Limit, Reset: now, Subject: r.Subject, Family: r.Family, at: nowMS}
	if oldest > 0 {
		res.Reset = time.UnixMilli(oldest).UTC().Add(r.Window)
	}
	if i < take {
		res.Allowed, res.Count, res.ID = true, before+i+1, id
	} else {
		// The window is full, so it holds an entry younger than the
		// window: RetryAfter is at least 1 ms, as in toResult.
		res.Count = before + take
		res.RetryAfter = max(res.Reset.Sub(now), time.Millisecond)
		res.Held = time.Duration(v[4]) * time.Millisecond
	}
	res.Remaining = max(r.Limit-res.Count, 0)
	return res
}
