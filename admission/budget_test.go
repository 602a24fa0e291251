package admission

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

func TestBudget(t *testing.T) {
	b := NewBudget(100)
	ctx := context.Background()
	got, err := b.Acquire(ctx, 60)
	if err != nil || got != 60 {
		t.Fatalf("first: %d %v", got, err)
	}
	// 50 does not fit: it waits in line; a later 10 that would fit waits
	// behind it (first come first served).
	big := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, 50)
		big <- err
	}()
	waitLen(t, b, 1)
	small := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, 10)
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
	b.Release(60)
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
		_, err := b.Acquire(cctx, 90)
		gaveUp <- err
	}()
	waitLen(t, b, 1)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("gave up: %v", err)
	}
	if n, err := b.Acquire(ctx, 40); err != nil || n != 40 {
		t.Fatalf("after a waiter left: %d %v", n, err)
	}
	b.Release(100)
	// Larger than the whole budget: clamped, so it runs alone.
	if n, err := b.Acquire(ctx, 1000); err != nil || n != 100 {
		t.Fatalf("oversized: %d %v", n, err)
	}
	b.Release(100)
	if b.InUse() != 0 {
		t.Fatalf("in use %d after releasing all", b.InUse())
	}
	var none *Budget
	if n, err := none.Acquire(ctx, 5); err != nil || n != 0 {
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
	if got, ok := b.TryAcquire(60); !ok || got != 60 {
		t.Fatalf("60 of 100: %d %v", got, ok)
	}
	if got, ok := b.TryAcquire(50); ok || got != 0 || b.InUse() != 60 {
		t.Fatalf("50 more: %d %v, in use %d; want refused, nothing taken", got, ok, b.InUse())
	}
	// Someone waits: a request that would fit must not jump the line.
	done := make(chan error, 1)
	go func() {
		_, err := b.Acquire(context.Background(), 50)
		done <- err
	}()
	waitLen(t, b, 1)
	if _, ok := b.TryAcquire(10); ok {
		t.Fatal("10 jumped the line")
	}
	b.Release(60)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, ok := b.TryAcquire(50); !ok || got != 50 || b.InUse() != 100 {
		t.Fatalf("the last 50: %d %v, in use %d", got, ok, b.InUse())
	}
	var nilBudget *Budget
	if got, ok := nilBudget.TryAcquire(10); !ok || got != 0 {
		t.Fatalf("no budget: %d %v", got, ok)
	}
}
