// Package concurrency limits how many requests one client key has in
// flight at once, across every replica, so that keys sharing an upstream
// account get a fair share of it. A place is a lease, not a counter: each
// lease has an expiry that its replica renews while the request runs, so the
// places a crashed replica held come back by themselves within LeaseTTL.
// A request over the limit waits, first come first served per key, for up to
// QueueWait; a key cannot queue more than MaxQueue (2×N) requests.
package concurrency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/clock"
)

var (
	// ErrQueueFull: the key already has 2×N requests waiting.
	ErrQueueFull = errors.New("too many requests queued for this key")
	// ErrWaitTimeout: no place came free within QueueWait.
	ErrWaitTimeout = errors.New("no place came free in time")
)

// Config of a Limiter. The zero value is usable.
type Config struct {
	// LeaseTTL is how long a lease lives without renewal (default 30 s):
	// the bound on how long a crashed replica's places stay taken.
	LeaseTTL time.Duration
	// QueueWait is how long a request waits for a place (default 30 s).
	QueueWait time.Duration
	// Poll is how often a waiting request asks the store again (default
	// 50 ms); a place freed on the same replica wakes it at once.
	Poll time.Duration
	// Clock, when set, scores leases and times waits and renewals (tests
	// with a fake clock). Nil means Redis TIME for scores, which every
	// replica shares, and the wall clock for timers.
	Clock clock.Clock
	Log   logrus.FieldLogger
}

// Limiter hands out leases. Run must be running for leases to be renewed.
type Limiter struct {
	rdb redis.UniversalClient
	cfg Config

	mu    sync.Mutex
	live  map[*Lease]struct{}
	wakes map[string]chan struct{} // key hash → closed when a local place frees
	// orphans are leases this replica may hold in the store but could not
	// give back (the store did not answer): the next renewal removes them,
	// so a slow reply costs a key its place for one renewal period at most,
	// not a whole LeaseTTL.
	orphans []orphan
}

type orphan struct {
	keyHash, id string
	at          time.Time
}

// maxOrphans bounds the give-backs kept for the next renewal while the
// store is away; past it a lease ends by itself within LeaseTTL.
const maxOrphans = 4096

// New returns a Limiter on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Limiter {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 30 * time.Second
	}
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		cfg.Log = l
	}
	return &Limiter{rdb: rdb, cfg: cfg, live: map[*Lease]struct{}{}, wakes: map[string]chan struct{}{}}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// QueueWait is the configured wait.
func (l *Limiter) QueueWait() time.Duration { return l.cfg.QueueWait }

// Each key's state lives under its own hash tag, so one script sees all of
// it in a cluster, and keys spread over the slots.
func keys(keyHash string) []string {
	p := "cr:cc:{" + keyHash + "}:"
	return []string{p + "l", p + "q", p + "qx", p + "seq"}
}

func (l *Limiter) nowArg() string {
	if l.cfg.Clock == nil {
		return ""
	}
	return strconv.FormatInt(l.cfg.Clock.Now().UnixMilli(), 10)
}

// nowLua reads the time from ARGV (tests) or Redis TIME (production).
const nowLua = `
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end
`

// purgeLua drops expired leases and waiters (of dead replicas).
const purgeLua = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, w in ipairs(gone) do redis.call('ZREM', KEYS[2], w) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
`

// enterScript is the optimistic first step, cheap enough to ride in the
// admission pipeline: when nobody waits it takes a lease unconditionally
// and returns how many live leases there are with it. The caller, who
// knows N, keeps it when that count is at most N; else it converts it into
// a place in the queue (waitScript). Over-counting can only send a request
// to the queue, never admit one too many: each entrant sees the count that
// includes itself. It purges nothing: expired leases are not counted
// (ZCOUNT from now), and a queue holding only dead waiters sends the
// request to the wait step, which purges them. That keeps the hot path at
// five commands inside the script.
// ARGV: now ms or "", lease id, ttl ms.
// Returns {1 taken | 0 someone waits, live leases}.
var enterScript = redis.NewScript(nowLua + `
if redis.call('ZCARD', KEYS[2]) > 0 then return {0, 0} end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')}
`)

// waitScript is one step of a waiting request: give back an over-limit
// lease it may hold, join the queue (refused when it is full), or take a
// lease when one is free for its place in the line; first come first
// served. ARGV: now ms or "", id, N, max queue, lease ttl ms, waiter ttl ms.
// Returns {1 admitted | 0 waiting | -1 queue full, position}.
var waitScript = redis.NewScript(nowLua + purgeLua + `
local id, n, maxq, ttl, wttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREM', KEYS[1], id)
local free = n - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], id)
local function grant()
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[1], now + ttl, id)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
if not rank then
  local queued = redis.call('ZCARD', KEYS[2])
  if free > 0 and queued == 0 then return grant() end
  if queued >= maxq then return {-1, queued} end
  local seq = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[2], seq, id)
  redis.call('ZADD', KEYS[3], now + wttl, id)
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], wttl + ttl) end
  return {0, queued + 1}
end
if free > rank then return grant() end
redis.call('ZADD', KEYS[3], now + wttl, id)
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], wttl + ttl) end
return {0, rank + 1}
`)

// leaveScript removes a lease or a waiter; ARGV: id.
var leaveScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`)

// Lease is one request's place. Release it exactly when the request ends.
type Lease struct {
	l       *Limiter
	keyHash string
	id      string
	once    sync.Once
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Preload loads the enter script, which runs inside pipelines where a
// NOSCRIPT cannot be retried (the entry then falls back to a wait step).
func (l *Limiter) Preload(ctx context.Context) error {
	if err := enterScript.Load(ctx, l.rdb).Err(); err != nil {
		return fmt.Errorf("load concurrency script: %w", err)
	}
	return nil
}

// Entry is an optimistic enter queued in a pipeline.
type Entry struct {
	l       *Limiter
	keyHash string
	id      string
	cmd     *redis.Cmd
}

// QueueEnter adds the optimistic enter to a pipeline (see enterScript).
func (l *Limiter) QueueEnter(ctx context.Context, pipe redis.Pipeliner, keyHash string) *Entry {
	id := newID()
	ks := keys(keyHash)
	return &Entry{l: l, keyHash: keyHash, id: id,
		cmd: enterScript.Run(ctx, pipe, ks[:4], l.nowArg(), id, l.cfg.LeaseTTL.Milliseconds())}
}

// Admit finishes the entry for a key allowed n requests in flight: the
// lease when the optimistic enter fit, else a wait in the key's queue
// (ErrQueueFull, ErrWaitTimeout, or ctx's error).
func (e *Entry) Admit(ctx context.Context, n int) (*Lease, error) {
	res, err := e.cmd.Int64Slice()
	if err == nil && res[0] == 1 && int(res[1]) <= n {
		return e.l.track(e.keyHash, e.id), nil
	}
	if err != nil && !isNoScript(err) {
		// The script may have run with its answer lost (a read timeout):
		// the lease it took must not keep the key's place for LeaseTTL.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		e.l.leave(lctx, e.keyHash, e.id)
		cancel()
		return nil, fmt.Errorf("concurrency enter: %w", err)
	}
	return e.l.wait(ctx, e.keyHash, e.id, n)
}

// Abandon gives back what the entry may hold when the request is refused
// for another reason (bad key, quota) before Admit.
func (e *Entry) Abandon(ctx context.Context) {
	e.l.leave(ctx, e.keyHash, e.id)
}

// leave removes id from the key's leases and queue; when the store does
// not answer, the next renewal tries again.
func (l *Limiter) leave(ctx context.Context, keyHash, id string) {
	if err := leaveScript.Run(ctx, l.rdb, keys(keyHash)[:3], id).Err(); err != nil {
		l.orphan(keyHash, id)
	}
}

func (l *Limiter) orphan(keyHash, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.orphans) < maxOrphans {
		l.orphans = append(l.orphans, orphan{keyHash: keyHash, id: id, at: l.now()})
	}
}

func (l *Limiter) now() time.Time {
	if l.cfg.Clock != nil {
		return l.cfg.Clock.Now()
	}
	return time.Now()
}

func isNoScript(err error) bool {
	return err != nil && len(err.Error()) >= 8 && err.Error()[:8] == "NOSCRIPT"
}

// Acquire takes a place for the key (n in flight at most), waiting when
// needed: the same as QueueEnter + Admit, in its own round trip.
func (l *Limiter) Acquire(ctx context.Context, keyHash string, n int) (*Lease, error) {
	pipe := l.rdb.Pipeline()
	e := l.QueueEnter(ctx, pipe, keyHash)
	_, _ = pipe.Exec(ctx)
	return e.Admit(ctx, n)
}

func (l *Limiter) track(keyHash, id string) *Lease {
	ls := &Lease{l: l, keyHash: keyHash, id: id}
	l.mu.Lock()
	l.live[ls] = struct{}{}
	l.mu.Unlock()
	return ls
}

// wait queues the request and polls until it is admitted, the queue is
// full, QueueWait passes or ctx ends. A place freed on this replica wakes
// it at once; one freed elsewhere is seen at the next poll.
func (l *Limiter) wait(ctx context.Context, keyHash, id string, n int) (*Lease, error) {
	ks := keys(keyHash)
	timedOut := make(chan struct{})
	var t clock.Timer
	if l.cfg.Clock != nil {
		t = l.cfg.Clock.AfterFunc(l.cfg.QueueWait, func() { close(timedOut) })
	} else {
		t = time.AfterFunc(l.cfg.QueueWait, func() { close(timedOut) })
	}
	defer t.Stop()
	leave := func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		l.leave(lctx, keyHash, id)
		l.wake(keyHash) // the next in line may be admitted now
	}
	waiterTTL := 5 * l.cfg.Poll
	if waiterTTL < 5*time.Second {
		waiterTTL = 5 * time.Second
	}
	for {
		wake := l.wakeChan(keyHash)
		res, err := waitScript.Run(ctx, l.rdb, ks, l.nowArg(), id, n, 2*n,
			l.cfg.LeaseTTL.Milliseconds(), waiterTTL.Milliseconds()).Int64Slice()
		if err != nil {
			leave()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("concurrency wait: %w", err)
		}
		switch res[0] {
		case 1:
			return l.track(keyHash, id), nil
		case -1:
			return nil, ErrQueueFull
		}
		poll := time.NewTimer(l.cfg.Poll)
		select {
		case <-ctx.Done():
			poll.Stop()
			leave()
			return nil, ctx.Err()
		case <-timedOut:
			poll.Stop()
			leave()
			return nil, ErrWaitTimeout
		case <-wake:
		case <-poll.C:
		}
		poll.Stop()
	}
}

func (l *Limiter) wakeChan(keyHash string) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch, ok := l.wakes[keyHash]
	if !ok {
		ch = make(chan struct{})
		l.wakes[keyHash] = ch
	}
	return ch
}

func (l *Limiter) wake(keyHash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ch, ok := l.wakes[keyHash]; ok {
		close(ch)
		delete(l.wakes, keyHash)
	}
}

// Release gives the place back. It is safe to call more than once.
func (ls *Lease) Release(ctx context.Context) {
	if ls == nil {
		return
	}
	ls.once.Do(func() {
		l := ls.l
		l.mu.Lock()
		delete(l.live, ls)
		l.mu.Unlock()
		// A granted lease is never in the queue: one ZREM, no script.
		if err := l.rdb.ZRem(ctx, keys(ls.keyHash)[0], ls.id).Err(); err != nil {
			l.cfg.Log.WithError(err).Warn("concurrency lease not released; the next renewal releases it")
			l.orphan(ls.keyHash, ls.id)
		}
		l.wake(ls.keyHash)
	})
}

// Held is the number of leases this replica holds (tests, metrics).
func (l *Limiter) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live)
}

// renewScript extends the leases that still exist (XX: a lease already
// expired and purged is never brought back, its place may be taken).
// KEYS[1] the leases; ARGV: now ms or "", ttl ms, ids...
var renewScript = redis.NewScript(nowLua + `
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

// Renew extends every live lease of this replica, one script per key, and
// removes the leases it could not give back before, all in one pipeline.
func (l *Limiter) Renew(ctx context.Context) error {
	l.mu.Lock()
	byKey := map[string][]any{}
	for ls := range l.live {
		byKey[ls.keyHash] = append(byKey[ls.keyHash], ls.id)
	}
	// Orphans older than LeaseTTL have expired by themselves.
	cutoff := l.now().Add(-l.cfg.LeaseTTL)
	orphans := slices.DeleteFunc(l.orphans, func(o orphan) bool { return o.at.Before(cutoff) })
	l.orphans = nil
	l.mu.Unlock()
	if len(byKey) == 0 && len(orphans) == 0 {
		return nil
	}
	pipe := l.rdb.Pipeline()
	for h, ids := range byKey {
		args := append([]any{l.nowArg(), l.cfg.LeaseTTL.Milliseconds()}, ids...)
		// Eval, not EvalSha: a pipeline cannot retry a NOSCRIPT.
		renewScript.Eval(ctx, pipe, keys(h)[:1], args...)
	}
	for _, o := range orphans {
		ks := keys(o.keyHash)
		pipe.ZRem(ctx, ks[0], o.id)
		pipe.ZRem(ctx, ks[1], o.id)
		pipe.ZRem(ctx, ks[2], o.id)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		if len(orphans) > 0 {
			l.mu.Lock()
			l.orphans = append(orphans, l.orphans...)
			l.mu.Unlock()
		}
		return fmt.Errorf("renew leases: %w", err)
	}
	if len(orphans) > 0 {
		for _, o := range orphans {
			l.wake(o.keyHash) // a waiter may take the place now
		}
	}
	return nil
}

// Run renews the leases every LeaseTTL/3 until ctx ends. The renewal runs
// in the timer's callback under a lock that Run takes before returning, so
// no renewal outlives Run; with a fake clock it runs inside Advance, so a
// test that moves time sees live leases renewed.
func (l *Limiter) Run(ctx context.Context) {
	every := l.cfg.LeaseTTL / 3
	after := func(f func()) clock.Timer {
		if l.cfg.Clock != nil {
			return l.cfg.Clock.AfterFunc(every, f)
		}
		return time.AfterFunc(every, f)
	}
	var mu sync.Mutex
	stopped := false
	var t clock.Timer
	var fire func()
	fire = func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := l.Renew(ctx); err != nil && ctx.Err() == nil {
			l.cfg.Log.WithError(err).Warn("concurrency leases not renewed; retrying")
		}
		t = after(fire)
	}
	mu.Lock()
	t = after(fire)
	mu.Unlock()
	<-ctx.Done()
	mu.Lock()
	stopped = true
	t.Stop()
	mu.Unlock()
}
