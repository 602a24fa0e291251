package concurrency

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

// db is this package's logical database in the shared test Redis.
const db = 11

func queued(t *testing.T, rdb redis.UniversalClient, h string) int64 {
	t.Helper()
	n, err := rdb.ZCard(context.Background(), keys(h)[1]).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func leases(t *testing.T, rdb redis.UniversalClient, h string) int64 {
	t.Helper()
	n, err := rdb.ZCard(context.Background(), keys(h)[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two replicas, many requests on one key: never more than N in flight, and
// every request gets its turn.
func TestAtMostNAcrossReplicas(t *testing.T) {
	r1, r2 := testenv.Redis(t, db), testenv.Redis(t, db)
	ls := []*Limiter{New(r1, Config{QueueWait: 10 * time.Second, Poll: 5 * time.Millisecond}),
		New(r2, Config{QueueWait: 10 * time.Second, Poll: 5 * time.Millisecond})}
	var in, peak atomic.Int32
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := 0; i < 6; i++ { // 2 in flight + 2×2 queued
		wg.Add(1)
		go func(l *Limiter) {
			defer wg.Done()
			lease, err := l.Acquire(context.Background(), "k", 2)
			if err != nil {
				failed.Add(1)
				return
			}
			n := in.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
			in.Add(-1)
			lease.Release(context.Background())
		}(ls[i%2])
	}
	wg.Wait()
	if failed.Load() != 0 || peak.Load() > 2 || peak.Load() < 1 {
		t.Fatalf("failed %d, peak %d in flight (limit 2)", failed.Load(), peak.Load())
	}
	if leases(t, r1, "k") != 0 || queued(t, r1, "k") != 0 {
		t.Fatal("everything released must leave no lease or waiter")
	}
}

func TestFirstComeFirstServed(t *testing.T) {
	rdb := testenv.Redis(t, db)
	l := New(rdb, Config{QueueWait: 10 * time.Second, Poll: 5 * time.Millisecond})
	ctx := context.Background()
	held, err := l.Acquire(ctx, "k", 1)
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 2)
	leasesOut := make(chan *Lease, 2)
	for i := 1; i <= 2; i++ {
		go func(i int) {
			ls, err := l.Acquire(ctx, "k", 1)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			leasesOut <- ls
		}(i)
		waitFor(t, "waiter queued", func() bool { return queued(t, rdb, "k") == int64(i) })
	}
	held.Release(ctx)
	if first := <-order; first != 1 {
		t.Fatalf("waiter %d admitted first", first)
	}
	(<-leasesOut).Release(ctx)
	if second := <-order; second != 2 {
		t.Fatalf("waiter %d admitted second", second)
	}
	(<-leasesOut).Release(ctx)
}

func TestQueueHoldsAtMostTwiceN(t *testing.T) {
	rdb := testenv.Redis(t, db)
	l := New(rdb, Config{QueueWait: 10 * time.Second, Poll: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held, _ := l.Acquire(ctx, "k", 1)
	errs := make(chan error, 2)
	for i := 1; i <= 2; i++ {
		go func() {
			ls, err := l.Acquire(ctx, "k", 1)
			ls.Release(context.Background())
			errs <- err
		}()
		waitFor(t, "waiter queued", func() bool { return queued(t, rdb, "k") == int64(i) })
	}
	start := time.Now()
	if _, err := l.Acquire(ctx, "k", 1); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third waiter with N=1: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("a full queue must refuse at once")
	}
	held.Release(ctx)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestWaitTimesOutAndLeavesTheQueue(t *testing.T) {
	rdb := testenv.Redis(t, db)
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	l := New(rdb, Config{QueueWait: 30 * time.Second, Poll: 5 * time.Millisecond, Clock: clk})
	ctx := context.Background()
	held, _ := l.Acquire(ctx, "k", 1)
	defer held.Release(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx, "k", 1)
		errc <- err
	}()
	waitFor(t, "waiter queued", func() bool { return queued(t, rdb, "k") == 1 })
	clk.Advance(30 * time.Second)
	if err := <-errc; !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("want ErrWaitTimeout, got %v", err)
	}
	if queued(t, rdb, "k") != 0 {
		t.Fatal("a timed-out waiter must leave the queue")
	}
}

// A replica that dies holding places (no release, no renewal) gives them
// back within LeaseTTL; the leases of a live replica are renewed meanwhile.
func TestDeadReplicaPlacesComeBack(t *testing.T) {
	r1, r2 := testenv.Redis(t, db), testenv.Redis(t, db)
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	cfg := Config{LeaseTTL: 30 * time.Second, QueueWait: 5 * time.Minute, Poll: 5 * time.Millisecond, Clock: clk}
	dead, live := New(r1, cfg), New(r2, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { live.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i := 0; i < 2; i++ {
		if _, err := dead.Acquire(ctx, "k", 3); err != nil { // never released: the replica "dies"
			t.Fatal(err)
		}
	}
	mine, err := live.Acquire(ctx, "k", 3)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Lease, 1)
	go func() {
		ls, err := live.Acquire(ctx, "k", 3)
		if err != nil {
			t.Error(err)
		}
		got <- ls
	}()
	waitFor(t, "waiter queued", func() bool { return queued(t, r2, "k") == 1 })
	for i := 0; i < 8; i++ { // 40 s in steps: renewals fire on the way
		clk.Advance(5 * time.Second)
	}
	select {
	case ls := <-got:
		ls.Release(ctx)
	case <-time.After(5 * time.Second):
		t.Fatal("the dead replica's places did not come back")
	}
	if n := leases(t, r2, "k"); n != 1 {
		t.Fatalf("the live replica's own lease must survive by renewal: %d leases", n)
	}
	mine.Release(ctx)
	if n := leases(t, r2, "k"); n != 0 {
		t.Fatalf("%d leases left", n)
	}
}

// The optimistic enter rides in a pipeline; over the limit it turns into a
// wait, and an abandoned entry gives its place back.
func TestQueueEnterInPipeline(t *testing.T) {
	rdb := testenv.Redis(t, db)
	l := New(rdb, Config{QueueWait: 50 * time.Millisecond, Poll: 5 * time.Millisecond})
	ctx := context.Background()
	enter := func() *Entry {
		pipe := rdb.Pipeline()
		e := l.QueueEnter(ctx, pipe, "k")
		pipe.Get(ctx, "unrelated")
		_, _ = pipe.Exec(ctx)
		return e
	}
	if err := l.Preload(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := enter().Admit(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enter().Admit(ctx, 1); !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("over the limit must wait then time out: %v", err)
	}
	if n := leases(t, rdb, "k"); n != 1 {
		t.Fatalf("the over-limit entry must give its lease back: %d", n)
	}
	a.Release(ctx)
	e := enter()
	e.Abandon(ctx)
	if n := leases(t, rdb, "k"); n != 0 {
		t.Fatalf("abandoned entry holds a lease: %d", n)
	}
}
