package keys

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// RedisLocker is a Locker on a redsync mutex, shared by every replica that
// uses the same Redis.
type RedisLocker struct {
	rs *redsync.Redsync
	// Expiry bounds how long a crashed holder blocks the others. A live
	// holder extends the lock every keepAlive, so a slow disk rewriting a
	// whole tier file never lets a second writer in midway.
	expiry    time.Duration
	keepAlive time.Duration
	tries     int
}

// NewRedisLocker returns a Locker backed by rdb.
func NewRedisLocker(rdb redis.UniversalClient) *RedisLocker {
	return &RedisLocker{
		rs:        redsync.New(goredis.NewPool(rdb)),
		expiry:    30 * time.Second,
		keepAlive: 10 * time.Second,
		// With 5–25 ms between tries this waits up to ~15 s for a busy
		// lock; the caller's context can cut that short.
		tries: 1000,
	}
}

// Lock takes the named lock, retrying until it is free, tries run out or
// ctx ends.
func (l *RedisLocker) Lock(ctx context.Context, name string) (func(), error) {
	m := l.rs.NewMutex(name,
		redsync.WithExpiry(l.expiry),
		redsync.WithTries(l.tries),
		// Short, jittered retries: holders keep the lock for milliseconds,
		// and redsync's default 50–250 ms would make a burst of issuances
		// crawl.
		redsync.WithRetryDelayFunc(func(int) time.Duration {
			return 5*time.Millisecond + rand.N(20*time.Millisecond)
		}),
	)
	if err := m.LockContext(ctx); err != nil {
		// redsync reports a cancelled wait as ErrFailed; surface the
		// context's own error so callers can tell a timeout apart.
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("lock %s: %w", name, errors.Join(cerr, err))
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.extend(ctx, m, stop)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			// Release even if the caller's context is already done; if
			// this fails the lock still expires on its own.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = m.UnlockContext(ctx)
		})
	}, nil
}

// extend keeps m alive until stop is closed. It uses wall time on purpose:
// the lock expires in Redis time. A failed extension is retried at the
// next tick; the expiry leaves two more.
func (l *RedisLocker) extend(ctx context.Context, m *redsync.Mutex, stop <-chan struct{}) {
	t := time.NewTicker(max(l.keepAlive, time.Millisecond))
	defer t.Stop()
	ctx = context.WithoutCancel(ctx) // the holder, not its caller's deadline, ends the lock
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ectx, cancel := context.WithTimeout(ctx, l.keepAlive)
			_, _ = m.ExtendContext(ectx)
			cancel()
		}
	}
}
