package keys

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The writer: one goroutine per Ledger drains a queue of changes. What
// arrives while it writes one batch becomes the next batch: one lock, one
// append and one fsync per tier, whatever the number of changes. It is
// started by the first change and stopped, after a last drain, by Close.

const (
	// maxBatch bounds one commit, so that a huge burst still commits in
	// pieces of bounded time (one batch of this size takes well under
	// 100 ms to encode and append).
	maxBatch = 20000
	// retryPosted is how long posted changes wait after a failed commit.
	retryPosted = 500 * time.Millisecond
	// commitTimeout bounds one commit (the cross-replica lock included).
	commitTimeout = 20 * time.Second
)

// pending is one caller's changes: all or none of them are written.
type pending struct {
	cs   []Change
	out  []Record   // the records after each change
	err  error      // why these changes did not apply
	done chan error // nil: posted, nobody waits
	// gone is the waiter's context: changes whose waiter left before the
	// writer took them are not written (the caller was told they failed).
	gone <-chan struct{}
}

type writer struct {
	mu      sync.Mutex
	queue   []*pending
	queued  int // changes in queue
	writing int // changes of the batch being committed
	started bool
	closed  bool
	wake    chan struct{}
	stop    chan struct{}
	exited  chan struct{}
	// base is every commit's parent context; abort ends a commit that
	// outlives Close's deadline (a lock that never comes).
	base  context.Context
	abort context.CancelFunc
}

func (w *writer) init() {
	w.base, w.abort = context.WithCancel(context.Background())
	w.wake = make(chan struct{}, 1)
	w.stop = make(chan struct{})
	w.exited = make(chan struct{})
}

// ErrClosed: the ledger's writer was stopped.
var ErrClosed = errors.New("keys: ledger closed")

// enqueue adds p and starts the writer if it is not running.
func (l *Ledger) enqueue(p *pending) error {
	l.w.mu.Lock()
	if l.w.closed {
		l.w.mu.Unlock()
		return ErrClosed
	}
	l.w.queue = append(l.w.queue, p)
	l.w.queued += len(p.cs)
	if !l.w.started {
		l.w.started = true
		go l.run()
	}
	l.w.mu.Unlock()
	select {
	case l.w.wake <- struct{}{}:
	default:
	}
	return nil
}

// Commit writes changes durably (appended and fsynced) and returns each
// key's record after its change. Either all of them are written or none.
// An issue of a hash the tier already holds, or a change to a key the
// ledger does not hold, fails with ErrNotFound or an error naming it.
func (l *Ledger) Commit(ctx context.Context, cs ...Change) ([]Record, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keys: ledger: %w", err)
	}
	p := &pending{cs: cs, done: make(chan error, 1), gone: ctx.Done()}
	if err := l.enqueue(p); err != nil {
		return nil, err
	}
	select {
	case err := <-p.done:
		return p.out, err
	case <-ctx.Done():
		// The changes may still be written; the caller treats them as
		// failed, as it would a write whose answer was lost.
		return nil, fmt.Errorf("keys: ledger: %w", ctx.Err())
	}
}

// Post queues changes without waiting: the writer commits them with the
// next batch (within about 100 ms at any ledger size) and retries them if
// the commit fails, until Close. For changes whose truth lives elsewhere
// too (a binding is also in the pool), so the request path never waits
// for the disk.
func (l *Ledger) Post(cs ...Change) error {
	if len(cs) == 0 {
		return nil
	}
	return l.enqueue(&pending{cs: cs})
}

// Flush waits until every change queued before it was written (or
// failed): tests and tools that read the files right after a Post.
func (l *Ledger) Flush(ctx context.Context) error {
	p := &pending{done: make(chan error, 1), gone: ctx.Done()}
	if err := l.enqueue(p); err != nil {
		return err
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("keys: ledger flush: %w", ctx.Err())
	}
}

// Close stops the writer after it wrote what was queued (bounded by ctx).
// Posted changes it could not write are reported to OnError.
func (l *Ledger) Close(ctx context.Context) error {
	l.w.mu.Lock()
	started := l.w.started
	if !l.w.closed {
		l.w.closed = true
		close(l.w.stop)
	}
	l.w.mu.Unlock()
	if !started {
		l.w.abort()
		return nil
	}
	compacted := make(chan struct{})
	go func() {
		<-l.w.exited
		l.compactors.Wait() // started by the writer only, so none starts after it exits
		close(compacted)
	}()
	select {
	case <-compacted:
		l.w.abort()
		return nil
	case <-ctx.Done():
		l.w.abort() // what is left fails now and is reported to OnError
		return fmt.Errorf("keys: ledger close: %w", ctx.Err())
	}
}

// Pending is the number of changes not yet written: queued, or in the
// batch being committed (taken from the queue, not yet fsynced). 0 means
// every change posted before the call is in the files (or failed and was
// reported), which is what /metrics' claude_route_ledger_pending_changes
// lets a bench or an operator see without reading the files.
func (l *Ledger) Pending() int {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.w.queued + l.w.writing
}

// take removes up to maxBatch changes' worth of pendings from the queue,
// answering those whose waiter has already left.
func (w *writer) take() (batch []*pending, took bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, i := 0, 0
	for i < len(w.queue) && (i == 0 || n+len(w.queue[i].cs) <= maxBatch) {
		n += len(w.queue[i].cs)
		i++
	}
	taken := w.queue[:i:i]
	w.queue = w.queue[i:]
	w.queued -= n
	w.writing = n
	batch = taken[:0:0]
	for _, p := range taken {
		if p.gone != nil {
			select {
			case <-p.gone:
				p.done <- context.Canceled
				continue
			default:
			}
		}
		batch = append(batch, p)
	}
	return batch, len(taken) > 0
}

// written ends the batch take returned: it is in the files, or its
// failed posted changes are put back in front (requeue).
func (w *writer) written(failed []*pending) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writing = 0
	w.requeueLocked(failed)
}

func (w *writer) requeueLocked(ps []*pending) {
	for _, p := range ps {
		w.queued += len(p.cs)
	}
	w.queue = append(ps[:len(ps):len(ps)], w.queue...)
}

func (l *Ledger) run() {
	defer close(l.w.exited)
	stopping := false
	for {
		if !stopping {
			select {
			case <-l.w.wake:
			case <-l.w.stop:
				stopping = true
			}
		}
		for {
			batch, took := l.w.take()
			if !took {
				break
			}
			if len(batch) == 0 {
				l.w.written(nil)
				continue
			}
			failed := l.commitBatch(batch, stopping)
			if len(failed) == 0 {
				continue
			}
			if stopping {
				l.report(failed)
				continue
			}
			t := time.NewTimer(retryPosted)
			select {
			case <-t.C:
			case <-l.w.stop:
				t.Stop()
				stopping = true
			}
		}
		if stopping {
			return
		}
	}
}

func (l *Ledger) report(ps []*pending) {
	n := 0
	for _, p := range ps {
		n += len(p.cs)
	}
	if l.errLog != nil {
		l.errLog(fmt.Errorf("keys: ledger: %d posted changes not written at shutdown (sync writes bindings back from the pool)", n))
	}
}

// commitBatch writes a batch and answers its waiters; it returns the
// posted pendings that failed for a reason other than their own content,
// put back in front of the queue unless stopping. Pending drops before
// the waiters hear back, so a Flush is followed by Pending() == 0.
func (l *Ledger) commitBatch(batch []*pending, stopping bool) []*pending {
	ctx, cancel := context.WithTimeout(l.w.base, commitTimeout)
	defer cancel()
	err := l.commit(ctx, batch)
	// Before the callers hear back: a caller that waits for compactions
	// (tests) then finds this one started.
	l.startCompactions()
	var failed []*pending
	if err != nil {
		for _, p := range batch {
			if p.done == nil {
				failed = append(failed, p)
			}
		}
	}
	if stopping {
		l.w.written(nil)
	} else {
		l.w.written(failed)
	}
	for _, p := range batch {
		perr := err
		if perr == nil {
			perr = p.err
		}
		if p.done != nil {
			p.done <- perr
			continue
		}
		if err == nil && perr != nil && l.errLog != nil {
			l.errLog(perr)
		}
	}
	return failed
}
