// Package ratelimit enforces the 5-hour sliding windows: per subject (a
// client key's hash) and model family, at most Limit requests admitted in
// any Window. A request counts for exactly Window after its admission.
//
// Each window is one ZSET, cr:rl:<subject>:<family>, of admitted request ids
// scored by admission time. One Lua script checks and records atomically on
// the Redis clock, so any number of proxy replicas never overshoot a limit,
// and every write renews the key's TTL so idle windows vanish on their own.
package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
)

// KeyPrefix starts every window's Redis key.
const KeyPrefix = "cr:rl:"

// ErrInvalidRequest reports a Request that cannot be evaluated (empty or
// ':'-containing subject or family, limit below 1, window below 1ms).
// Unlimited families are the caller's business: it simply does not ask.
var ErrInvalidRequest = errors.New("ratelimit: invalid request")

// Limiter admits requests against sliding windows stored in Redis. It is
// safe for concurrent use.
type Limiter struct {
	rdb    redis.UniversalClient
	script *redis.Script
	clock  clock.Clock // nil: the script reads Redis TIME

	// Request ids are idPrefix + a counter: the random prefix keeps ids of
	// different replicas (and restarts) apart, the counter keeps this
	// process's ids apart without a syscall per request.
	idPrefix string
	seq      atomic.Uint64

	// many and groups serve AdmitMerged (merge.go).
	many   *redis.Script
	mu     sync.Mutex
	groups map[string]*mergeGroup

	sp spares // places taken ahead of requests (spare.go)

	// bg tracks give-backs retried off the request path (giveback.go).
	bg sync.WaitGroup
}

// Option configures a Limiter.
type Option func(*Limiter)

// WithClock makes the Limiter pass c's time to the script instead of using
// Redis TIME. Meant for tests with a fake clock; in production every replica
// must share the server's clock, so leave it out.
func WithClock(c clock.Clock) Option {
	return func(l *Limiter) { l.clock = c }
}

// New returns a Limiter on rdb. It does not talk to Redis; see Preload.
func New(rdb redis.UniversalClient, opts ...Option) *Limiter {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	l := &Limiter{
		rdb:      rdb,
		script:   redis.NewScript(windowScript),
		many:     redis.NewScript(manyScript),
		idPrefix: hex.EncodeToString(b[:]) + "-",
	}
	l.sp.script = redis.NewScript(spareScript)
	for _, o := range opts {
		o(l)
	}
	return l
}

// Preload loads the script into Redis (every master of a cluster) so the
// first pipelined admissions do not need the NOSCRIPT fallback. Call it at
// start-up; correctness never depends on it.
func (l *Limiter) Preload(ctx context.Context) error {
	for _, sc := range []*redis.Script{l.script, l.many, l.sp.script} {
		if err := sc.Load(ctx, l.rdb).Err(); err != nil {
			return fmt.Errorf("ratelimit: load script: %w", err)
		}
	}
	return nil
}

// Request names one window and its quota.
type Request struct {
	Subject, Family string
	Limit           int
	Window          time.Duration
}

func (r Request) validate() error {
	switch {
	case r.Subject == "" || strings.Contains(r.Subject, ":"):
		return fmt.Errorf("%w: subject %q", ErrInvalidRequest, r.Subject)
	case r.Family == "" || strings.Contains(r.Family, ":"):
		return fmt.Errorf("%w: family %q", ErrInvalidRequest, r.Family)
	case r.Limit < 1:
		return fmt.Errorf("%w: limit %d", ErrInvalidRequest, r.Limit)
	case r.Window < time.Millisecond:
		return fmt.Errorf("%w: window %v", ErrInvalidRequest, r.Window)
	}
	return nil
}

// Key is the Redis key of the request's window.
func (r Request) Key() string { return windowKey(r.Subject, r.Family) }

func windowKey(subject, family string) string {
	return KeyPrefix + subject + ":" + family
}

// Result is the outcome of an admission or a Peek.
type Result struct {
	// Allowed: the request was admitted (Admit) or would be (Peek).
	Allowed bool
	// Count is the number of requests in the window after this admission,
	// or the current number when refused or peeking. It can exceed Limit
	// when the limit was lowered after the requests were admitted.
	Count int
	// Limit is the request's quota; Remaining is Limit-Count, never negative.
	Limit, Remaining int
	// Reset is when the oldest counted request leaves the window, i.e. when
	// a place frees up. For an empty window it is now: nothing to wait for.
	Reset time.Time
	// RetryAfter is set when not Allowed: the time until a place frees up,
	// always positive. Send it with RetryAfterSeconds.
	RetryAfter time.Duration
	// Held is set on a refusal that another replica's spares (places it
	// took ahead of its requests, spare.go) may have caused: within Held
	// they are used, given back or (their holder gone) counted for good, so
	// the request may wait that long and ask again rather than be refused
	// while the quota has room.
	Held time.Duration
	// ID identifies the admitted request for Refund; empty unless admitted.
	ID              string
	Subject, Family string

	spare bool // admitted on one of this Limiter's spares
	// at is the script's time (ms): answers that come back out of order
	// are applied in the order they were made (spare.go).
	at int64
}

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1,
// as a retry-after header wants it: rounding down would invite a retry that
// is refused again.
func (r Result) RetryAfterSeconds() int {
	s := int((r.RetryAfter + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Admit records the request in its window if the window has room.
// A refusal is a Result with Allowed false, not an error.
func (l *Limiter) Admit(ctx context.Context, r Request) (Result, error) {
	return l.run(ctx, r, l.newID())
}

// Peek reports the window without recording anything (and without
// writing: expired entries are skipped, not removed). Allowed and
// RetryAfter say what an admission now would get.
func (l *Limiter) Peek(ctx context.Context, r Request) (Result, error) {
	if err := r.validate(); err != nil {
		return Result{}, err
	}
	// Spares this Limiter's requests used may not be admissions in Redis
	// yet: the script counts those it still holds as spares. Counting them
	// here instead would count a spare twice once its rescoring landed, and
	// a refunded one while its rescoring is on its way.
	args := l.args(r, "")
	for _, id := range l.unsettled(r.Key()) {
		args = append(args, id)
	}
	v, err := l.script.Run(ctx, l.rdb, []string{r.Key()}, args...).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: peek %s: %w", r.Family, err)
	}
	return toResult(r, "", v)
}

func (l *Limiter) run(ctx context.Context, r Request, id string) (Result, error) {
	if err := r.validate(); err != nil {
		return Result{}, err
	}
	// Run tries EVALSHA and falls back to EVAL on NOSCRIPT.
	v, err := l.script.Run(ctx, l.rdb, []string{r.Key()}, l.args(r, id)...).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: %s %s: %w", verb(id), r.Family, err)
	}
	return toResult(r, id, v)
}

// Pending is an admission or peek queued on a pipeline. It belongs to the
// goroutine that queued it.
type Pending struct {
	l    *Limiter
	req  Request
	id   string
	keys []string
	args []any
	cmd  *redis.Cmd

	done bool
	res  Result
	err  error
}

// QueueAdmit queues an admission on pipe (EVALSHA), so it shares a round
// trip with other commands. Call Result after pipe.Exec. Exec reports the
// first failed command, which may be this one's NOSCRIPT: Result recovers
// from that, so callers should read every command's own result rather than
// give up on Exec's error.
func (l *Limiter) QueueAdmit(ctx context.Context, pipe redis.Pipeliner, r Request) *Pending {
	return l.queue(ctx, pipe, r, l.newID())
}

// QueuePeek is Peek queued on pipe, e.g. to read every family of a key in
// one round trip.
func (l *Limiter) QueuePeek(ctx context.Context, pipe redis.Pipeliner, r Request) *Pending {
	return l.queue(ctx, pipe, r, "")
}

func (l *Limiter) queue(ctx context.Context, pipe redis.Pipeliner, r Request, id string) *Pending {
	p := &Pending{l: l, req: r, id: id}
	if err := r.validate(); err != nil {
		p.done, p.err = true, err
		return p
	}
	p.keys = []string{r.Key()}
	p.args = l.args(r, id)
	p.cmd = l.script.EvalSha(ctx, pipe, p.keys, p.args...)
	return p
}

// Result returns the outcome once the pipeline has been executed. If the
// server had lost the script (restart, SCRIPT FLUSH, failover), it runs it
// again with EVAL: one more round trip, and the request is still recorded
// at most once. Result is idempotent.
func (p *Pending) Result(ctx context.Context) (Result, error) {
	if p.done {
		return p.res, p.err
	}
	v, err := p.cmd.Int64Slice()
	if err == nil && v == nil {
		err = errors.New("pipeline not executed")
	}
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// NOSCRIPT means the script did not run, so running it now cannot
		// record the request twice.
		v, err = p.l.script.Eval(ctx, p.l.rdb, p.keys, p.args...).Int64Slice()
	}
	if err != nil {
		p.err = fmt.Errorf("ratelimit: %s %s: %w", verb(p.id), p.req.Family, err)
		// A timeout (or a NOSCRIPT re-run that timed out) may have
		// counted: the place whose answer was lost goes back.
		p.l.giveBack(p.keys[0], p.id)
	} else {
		p.res, p.err = toResult(p.req, p.id, v)
	}
	p.done = true
	return p.res, p.err
}

func verb(id string) string {
	if id == "" {
		return "peek"
	}
	return "admit"
}

// Refund gives an admitted request's place back, for a request that
// produced no answer. Refunding a refusal, or twice, does nothing.
func (l *Limiter) Refund(ctx context.Context, res Result) error {
	if !res.Allowed || res.ID == "" {
		return nil
	}
	if res.spare {
		l.forgetUsed(res)
	}
	key := windowKey(res.Subject, res.Family)
	if err := l.rdb.ZRem(ctx, key, res.ID).Err(); err != nil {
		l.giveBack(key, res.ID) // a store too slow now takes it later
		return fmt.Errorf("ratelimit: refund %s (retrying in the background): %w", res.Family, err)
	}
	return nil
}

// DeleteSubject removes every window of subject, whatever its families, and
// returns how many it removed. It SCANs for cr:rl:<subject>:* (on every
// master of a cluster) rather than taking a family list, so windows of
// families the subject's tier no longer has are not forgotten. That costs a
// pass over the keyspace, fine for the rare revocation it serves. A request
// admitted concurrently may re-create a window; it expires on its own.
func (l *Limiter) DeleteSubject(ctx context.Context, subject string) (int, error) {
	if subject == "" || strings.Contains(subject, ":") {
		return 0, fmt.Errorf("%w: subject %q", ErrInvalidRequest, subject)
	}
	l.forgetSubject(subject)
	pattern := KeyPrefix + escapeGlob(subject) + ":*"
	var total atomic.Int64
	del := func(ctx context.Context, c redis.UniversalClient) error {
		n, err := deleteMatching(ctx, c, pattern)
		total.Add(n)
		return err
	}
	var err error
	if cc, ok := l.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return del(ctx, m) })
	} else {
		err = del(ctx, l.rdb)
	}
	if err != nil {
		return int(total.Load()), fmt.Errorf("ratelimit: delete windows: %w", err)
	}
	return int(total.Load()), nil
}

// deleteMatching SCANs one node and deletes what matches, one DEL per key
// (pipelined) because a cluster refuses multi-key DEL across slots.
func deleteMatching(ctx context.Context, c redis.UniversalClient, pattern string) (int64, error) {
	var n int64
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 256).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Del(ctx, k)
				}
				return nil
			})
			if err != nil {
				return n, err
			}
			for _, cmd := range cmds {
				n += cmd.(*redis.IntCmd).Val()
			}
		}
		if next == 0 {
			return n, nil
		}
		cursor = next
	}
}

func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (l *Limiter) newID() string {
	return l.idPrefix + strconv.FormatUint(l.seq.Add(1), 36)
}

func (l *Limiter) args(r Request, id string) []any {
	return []any{r.Limit, r.Window.Milliseconds(), id, l.nowArg()}
}

// nowArg is the time the scripts take: "" for Redis TIME.
func (l *Limiter) nowArg() string {
	if l.clock == nil {
		return ""
	}
	return strconv.FormatInt(l.clock.Now().UnixMilli(), 10)
}

func toResult(r Request, id string, v []int64) (Result, error) {
	if len(v) != 5 {
		return Result{}, fmt.Errorf("ratelimit: script returned %d values, want 5", len(v))
	}
	allowed, count, oldest, nowMS := v[0] == 1, int(v[1]), v[2], v[3]
	now := time.UnixMilli(nowMS).UTC()
	res := Result{
		Allowed:   allowed,
		Count:     count,
		Limit:     r.Limit,
		Remaining: max(r.Limit-count, 0),
		Reset:     now,
		Subject:   r.Subject,
		Family:    r.Family,
		at:        nowMS,
	}
	if oldest > 0 {
		res.Reset = time.UnixMilli(oldest).UTC().Add(r.Window)
	}
	if !allowed {
		// The oldest entry is younger than the window, so this is >= 1ms
		// (unless only spares fill it: then Held says when to ask again).
		res.RetryAfter = max(res.Reset.Sub(now), time.Millisecond)
		res.Held = time.Duration(v[4]) * time.Millisecond
	} else if id != "" {
		res.ID = id
	}
	return res, nil
}
