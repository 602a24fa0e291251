package admission

import (
	"context"
	"errors"
	"math"
	"runtime"
	"testing"
)

func TestBudget(t *testing.T) {
	b := NewBudget(100)
	ctx := context.Background()
	got, err := b.Acquire(ctx, "k", 60)
	if err != nil || got != 60 {
		t.Fatalf("first: %d %v", got, err)
	}
	// 50 does not fit: it waits in line; a later 10 that would fit waits
	// behind it (first come first served).
	big := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, "k", 50)
		big <- err
	}()
	waitLen(t, b, 1)
	small := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, "k", 10)
		small <- err
	}()
	waitLen(t, b, 2)
	select {
	case <-big:
		t.Fatal("50 admitted over the budget")
	case <-small:
		t.Fatal("10 jumped the line")
	default:
	}
	b.Release("k", 60)
	if err := <-big; err != nil {
		t.Fatal(err)
	}
	if err := <-small; err != nil {
		t.Fatal(err)
	}
	if b.InUse() != 60 {
		t.Fatalf("in use %d, want 60", b.InUse())
	}
	// A waiter that gives up holds nothing and does not block the line.
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := b.Acquire(cctx, "k", 90)
		gaveUp <- err
	}()
	waitLen(t, b, 1)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("gave up: %v", err)
	}
	if n, err := b.Acquire(ctx, "k", 40); err != nil || n != 40 {
		t.Fatalf("after a waiter left: %d %v", n, err)
	}
	b.Release("k", 100)
	// Larger than the whole budget: clamped, so it runs alone.
	if n, err := b.Acquire(ctx, "k", 1000); err != nil || n != 100 {
		t.Fatalf("oversized: %d %v", n, err)
	}
	b.Release("k", 100)
	if b.InUse() != 0 {
		t.Fatalf("in use %d after releasing all", b.InUse())
	}
	var none *Budget
	if n, err := none.Acquire(ctx, "k", 5); err != nil || n != 0 {
		t.Fatal("a nil budget admits everything")
	}
}

// waitLen waits (on the budget's own state, no timers) for n waiters.
func waitLen(t *testing.T, b *Budget, n int) {
	t.Helper()
	for {
		b.mu.Lock()
		l := b.waiters.Len()
		b.mu.Unlock()
		if l == n {
			return
		}
		runtimeGosched()
	}
}

func runtimeGosched() { runtime.Gosched() }

func TestBudgetTryAcquire(t *testing.T) {
	b := NewBudget(100)
	if got, ok := b.TryAcquire("k", 60); !ok || got != 60 {
		t.Fatalf("60 of 100: %d %v", got, ok)
	}
	if got, ok := b.TryAcquire("k", 50); ok || got != 0 || b.InUse() != 60 {
		t.Fatalf("50 more: %d %v, in use %d; want refused, nothing taken", got, ok, b.InUse())
	}
	// Someone waits: a request that would fit must not jump the line.
	done := make(chan error, 1)
	go func() {
		_, err := b.Acquire(context.Background(), "k", 50)
		done <- err
	}()
	waitLen(t, b, 1)
	if _, ok := b.TryAcquire("k", 10); ok {
		t.Fatal("10 jumped the line")
	}
	b.Release("k", 60)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, ok := b.TryAcquire("k", 50); !ok || got != 50 || b.InUse() != 100 {
		t.Fatalf("the last 50: %d %v, in use %d", got, ok, b.InUse())
	}
	var nilBudget *Budget
	if got, ok := nilBudget.TryAcquire("k", 10); !ok || got != 0 {
		t.Fatalf("no budget: %d %v", got, ok)
	}
}

// Issue 24: the budget is shared fairly between keys. A key alone may use
// all of it; once another key waits for room, a key over its fair share
// (the budget over the active keys) is refused at once instead of waiting,
// and its waiting requests give their turn up, so the other key is served.
func TestBudgetFairShareBetweenKeys(t *testing.T) {
	ctx := context.Background()
	b := NewBudget(100)
	if _, err := b.Acquire(ctx, "hog", 90); err != nil {
		t.Fatal("a key alone may use the whole budget:", err)
	}
	// The hog also waits for more (alone, this is a wait for room).
	hogWait := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, "hog", 20)
		hogWait <- err
	}()
	waitLen(t, b, 1)
	// Another key's request that fits is not queued behind the hog's.
	if n, ok := b.TryAcquire("other", 10); !ok || n != 10 {
		t.Fatalf("another key behind a hog's waiter: %d %v", n, ok)
	}
	b.Release("other", 10)
	// Another key waits for room: the hog's waiter gives its turn up.
	otherWait := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, "other", 30)
		otherWait <- err
	}()
	if err := <-hogWait; !errors.Is(err, ErrOverShare) {
		t.Fatalf("the hog's waiting request: %v, want ErrOverShare", err)
	}
	// And a new request of the hog is refused at once, though 10 are free.
	if _, err := b.Acquire(ctx, "hog", 5); !errors.Is(err, ErrOverShare) {
		t.Fatalf("a hog's new request while another key waits: %v", err)
	}
	if _, ok := b.TryAcquire("hog", 5); ok {
		t.Fatal("TryAcquire let the hog take more while another key waits")
	}
	b.Release("hog", 90)
	if err := <-otherWait; err != nil {
		t.Fatal(err)
	}
	if b.HeldBy("other") != 30 || b.HeldBy("hog") != 0 || b.InUse() != 30 {
		t.Fatalf("held: other %d hog %d in use %d", b.HeldBy("other"), b.HeldBy("hog"), b.InUse())
	}
	b.Release("other", 30)
	if b.InUse() != 0 || len(b.keys) != 0 {
		t.Fatalf("after releasing all: %d bytes, %d keys remembered", b.InUse(), len(b.keys))
	}
}

// A hold takes bytes as they arrive: a body announcing 32 MiB and sending
// nothing holds one step, and the steps track what was read.
func TestHoldGrowsAsBytesArrive(t *testing.T) {
	b := NewBudget(256 << 20)
	h := b.NewHold("k", 32<<20)
	if to := h.Step(0); to != holdStep {
		t.Fatalf("first step: %d", to)
	}
	if !h.TryGrow(h.Step(0)) || b.InUse() != holdStep {
		t.Fatalf("first step held: %d", b.InUse())
	}
	if h.Room(0) != holdStep || h.Room(holdStep) != 0 {
		t.Fatalf("room: %d, %d", h.Room(0), h.Room(holdStep))
	}
	read := int64(8 << 20)
	if to := h.Step(read); to != read+read/8 {
		t.Fatalf("a large body's step: %d", to)
	}
	if to := h.Step(31 << 20); to != 32<<20 {
		t.Fatalf("the step stops at the maximum: %d", to)
	}
	if err := h.Grow(context.Background(), 32<<20); err != nil || h.Held() != 32<<20 || h.Room(32<<20) != math.MaxInt64 {
		t.Fatalf("grow to the maximum: %v held %d", err, h.Held())
	}
	h.Release()
	h.Release()
	if b.InUse() != 0 || h.TryGrow(10) && b.InUse() != 0 {
		t.Fatalf("after release: %d in use", b.InUse())
	}
	var none *Budget
	if h := none.NewHold("k", 10); h != nil || !h.TryGrow(5) || h.Room(100) != math.MaxInt64 {
		t.Fatal("no budget: a nil hold that admits everything")
	}
}
