package ratelimit

import (
	"context"
	"time"
)

// A place whose admission's answer was lost (a read timeout after the
// script may have run), or whose refund the store did not take, must not
// stay taken for the whole window: the limiter gives it back by itself,
// in the background, until the store takes it. Callers see only the
// error; the ids stay in this package.

// giveBackFor bounds the retries of a give-back (and so Wait).
const giveBackFor = 10 * time.Second

// giveBack removes entry id from window key in the background, retrying
// with backoff for up to giveBackFor. One try is not enough: a store slow
// enough to lose an answer also fails the next command's new connection
// (its handshake times out before the command is sent). ZREM of the
// request's own id is idempotent, and removing a place never taken is
// harmless.
func (l *Limiter) giveBack(key, id string) {
	if id == "" {
		return
	}
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		wait := 100 * time.Millisecond
		for end := time.Now().Add(giveBackFor); ; wait *= 2 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := l.rdb.ZRem(ctx, key, id).Err()
			cancel()
			if err == nil || time.Now().Add(wait).After(end) {
				return
			}
			time.Sleep(wait)
		}
	}()
}

// Wait waits for the give-backs still being retried (shutdown, tests).
func (l *Limiter) Wait() { l.bg.Wait() }

// Await is what a caller does with a refusal before answering it: when
// the window is full only of places other replicas took ahead of their
// requests (spares), those are used or given back within their short
// lease, so Await waits for that and reports that asking again may admit.
// tries counts the caller's earlier waits for the same request; after two,
// or when ctx ends, or for a refusal no wait can change, it says no at once.
func (l *Limiter) Await(ctx context.Context, res Result, tries int) bool {
	if res.Allowed || res.Held <= 0 || tries >= 2 {
		return false
	}
	t := time.NewTimer(res.Held + 10*time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
