package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Coalescer sends the small pipelines of concurrent requests to Redis
// together: while one batch is on the wire, the requests that arrive
// queue, and the next batch carries them all in one pipeline. Under load a
// request's admission then costs a fraction of a write(2) and a read(2) on
// both sides instead of one each, which is most of what Redis costs the
// proxy; alone, a request goes out at once, as before. Nothing is resent
// and no command changes: each request still reads only its own commands'
// results (Exec's error may be another request's).
type Coalescer struct {
	rdb     redis.UniversalClient
	q       chan *job
	timeout time.Duration
	stop    chan struct{}
	gone    chan struct{} // closed once every flusher has returned
	wg      sync.WaitGroup
	once    sync.Once
}

// job states: a queued job is taken by a flusher or cancelled by its
// caller, never both, so a command is never sent for a caller that left
// before it was taken, and a caller never leaves a taken job whose
// commands are being written.
const (
	jobQueued int32 = iota
	jobTaken
	jobCancelled
)

type job struct {
	queue func(redis.Pipeliner)
	state atomic.Int32
	done  chan struct{}
}

var jobPool = sync.Pool{New: func() any { return &job{done: make(chan struct{}, 1)} }}

// coalesceMax bounds one batch: past it, the next batch forms behind.
const coalesceMax = 128

// NewCoalescer starts flushers on rdb; Close stops them. timeout bounds one
// batch's round trip (the request path's store budget).
func NewCoalescer(rdb redis.UniversalClient, flushers int, timeout time.Duration) *Coalescer {
	c := &Coalescer{rdb: rdb, q: make(chan *job, 4*coalesceMax), timeout: timeout,
		stop: make(chan struct{}), gone: make(chan struct{})}
	for range max(flushers, 1) {
		c.wg.Go(c.flush)
	}
	return c
}

// Do has queue add commands to a pipeline that is sent with other
// callers' commands, and returns once they have run (or failed: read each
// command's Err). It returns ctx's error only when ctx ended before the
// commands were sent; once sent, Do waits for their answers, so the
// caller never abandons commands that may be running. After Close it
// returns redis.ErrClosed, with nothing sent.
func (c *Coalescer) Do(ctx context.Context, queue func(redis.Pipeliner)) error {
	select {
	case <-c.stop:
		return redis.ErrClosed
	default:
	}
	j := jobPool.Get().(*job)
	j.queue = queue
	j.state.Store(jobQueued)
	select {
	case c.q <- j:
	case <-ctx.Done():
		j.queue = nil
		jobPool.Put(j)
		return ctx.Err()
	case <-c.stop:
		return redis.ErrClosed
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		if j.state.CompareAndSwap(jobQueued, jobCancelled) {
			// The flusher will skip it and drop it; it is not reused.
			return ctx.Err()
		}
		<-j.done
	case <-c.gone:
		// Queued while Close drained (select picks at random among ready
		// cases): no flusher is left to take it.
		if j.state.CompareAndSwap(jobQueued, jobCancelled) {
			return redis.ErrClosed
		}
		<-j.done
	}
	j.queue = nil
	jobPool.Put(j)
	return nil
}

func (c *Coalescer) flush() {
	batch := make([]*job, 0, coalesceMax)
	for {
		select {
		case j := <-c.q:
			batch = append(batch[:0], j)
		case <-c.stop:
			c.drain(batch)
			return
		}
	more:
		for len(batch) < coalesceMax {
			select {
			case j := <-c.q:
				batch = append(batch, j)
			default:
				break more
			}
		}
		c.run(batch)
		clear(batch)
	}
}

// drain runs what is still queued at Close, so no caller waits for ever.
func (c *Coalescer) drain(batch []*job) {
	for {
		batch = batch[:0]
		for len(batch) < coalesceMax {
			select {
			case j := <-c.q:
				batch = append(batch, j)
				continue
			default:
			}
			break
		}
		if len(batch) == 0 {
			return
		}
		c.run(batch)
	}
}

func (c *Coalescer) run(batch []*job) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	pipe := c.rdb.Pipeline()
	taken := batch[:0]
	for _, j := range batch {
		if j.state.CompareAndSwap(jobQueued, jobTaken) {
			j.queue(pipe)
			taken = append(taken, j)
		}
	}
	if len(taken) > 0 {
		_, _ = pipe.Exec(ctx) // each caller reads its own commands
	}
	for _, j := range taken {
		j.done <- struct{}{}
	}
}

// Close stops the flushers once the batches on the wire are answered.
// Callers must be gone: a Do after Close answers redis.ErrClosed.
func (c *Coalescer) Close() {
	c.once.Do(func() {
		close(c.stop)
		c.wg.Wait()
		close(c.gone)
	})
	<-c.gone
}
