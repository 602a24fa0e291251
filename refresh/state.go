package refresh

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys owned by this package (DESIGN.md: cr:refresh:*). Each script
// touches one key, so everything works on a cluster.
const (
	globalKey   = "cr:refresh:global"
	lockPrefix  = "cr:refresh:lock:"
	statePrefix = "cr:refresh:state:"
)

func stateKey(name string) string { return statePrefix + name }
func lockKey(name string) string  { return lockPrefix + name }

// Fields of cr:refresh:state:<name>. Times are Unix milliseconds taken from
// the injected clock, so that fake-clock tests drive them; Redis TTLs only
// collect garbage.
const (
	fAttempts    = "attempts"       // failed token calls in the current window
	fWindow      = "window_start"   // when the current 24 h window began
	fCooldown    = "cooldown_until" // no attempt before this
	fLastError   = "last_error"     // text of the last failure (never a token)
	fLastErrorAt = "last_error_at"
	fLastSuccess = "last_success"
	fNext        = "next_refresh" // when a replica last planned the refresh
	fDead        = "dead"         // fingerprint of a refresh token the endpoint refused for good
)

// state is one account's refresh bookkeeping.
type state struct {
	attempts      int
	windowStart   time.Time
	cooldownUntil time.Time
	lastError     string
	lastSuccess   time.Time
	next          time.Time
	dead          string
}

func parseState(m map[string]string) state {
	n, _ := strconv.Atoi(m[fAttempts])
	return state{
		attempts:      n,
		windowStart:   msTime(m[fWindow]),
		cooldownUntil: msTime(m[fCooldown]),
		lastError:     m[fLastError],
		lastSuccess:   msTime(m[fLastSuccess]),
		next:          msTime(m[fNext]),
		dead:          m[fDead],
	}
}

// attemptsAt counts the attempts of the window still open at now. The
// window is fixed: it opens at the first failed call and lasts 24 h.
func (s state) attemptsAt(now time.Time, window time.Duration) int {
	if s.windowStart.IsZero() || !now.Before(s.windowStart.Add(window)) {
		return 0
	}
	return s.attempts
}

func msTime(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// fingerprint identifies a refresh token without storing it.
func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:8])
}

func (r *Refresher) stateTTL() time.Duration { return 2 * r.cfg.AttemptWindow }

func (r *Refresher) loadState(ctx context.Context, name string) (state, error) {
	m, err := r.rdb.HGetAll(ctx, stateKey(name)).Result()
	if err != nil {
		return state{}, fmt.Errorf("read refresh state %s: %w", name, err)
	}
	return parseState(m), nil
}

// failScript records one failed token call: it opens a new window when the
// old one is over, counts the attempt and sets the cooldown, atomically.
// KEYS[1] state; ARGV now, window, cooldown until, error text, ttl, dead fingerprint.
var failScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local ws = tonumber(redis.call('HGET', KEYS[1], 'window_start') or '0') or 0
local n = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') or 0
if ws == 0 or now >= ws + tonumber(ARGV[2]) then ws = now; n = 0 end
n = n + 1
redis.call('HSET', KEYS[1], 'window_start', ws, 'attempts', n, 'cooldown_until', ARGV[3],
  'last_error', ARGV[4], 'last_error_at', now)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'dead', ARGV[6]) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return n
`)

func (r *Refresher) recordFailure(ctx context.Context, name string, now, cooldownUntil time.Time, errText, dead string) (int, error) {
	n, err := failScript.Run(ctx, r.rdb, []string{stateKey(name)},
		ms(now), r.cfg.AttemptWindow.Milliseconds(), ms(cooldownUntil), errText,
		r.stateTTL().Milliseconds(), dead).Int()
	if err != nil {
		return 0, fmt.Errorf("record refresh failure %s: %w", name, err)
	}
	return n, nil
}

// recordSuccess resets attempts and cooldown.
func (r *Refresher) recordSuccess(ctx context.Context, name string, now time.Time) error {
	k := stateKey(name)
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, k, fAttempts, fWindow, fCooldown, fLastError, fLastErrorAt, fDead)
		p.HSet(ctx, k, fLastSuccess, ms(now))
		p.PExpire(ctx, k, r.stateTTL())
		return nil
	})
	if err != nil {
		return fmt.Errorf("record refresh success %s: %w", name, err)
	}
	return nil
}

// saveNext publishes planned refresh times for Status.
func (r *Refresher) saveNext(ctx context.Context, next map[string]time.Time) error {
	if len(next) == 0 {
		return nil
	}
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for name, at := range next {
			p.HSet(ctx, stateKey(name), fNext, ms(at))
			p.PExpire(ctx, stateKey(name), r.stateTTL())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save next refresh: %w", err)
	}
	return nil
}

// The global success lock holds "<until ms>:<owner>". A scheduled refresh
// claims it atomically before its token call (so two replicas refreshing
// different accounts cannot both start), a success moves it to success
// time + GlobalLock, and a failure releases the claim.

// claimScript: KEYS[1] global; ARGV now, until, owner, ttl. Returns 0 when
// claimed, else the until (ms) that blocks.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local u = tonumber(string.match(v, '^(%d+)'))
  if u and u > tonumber(ARGV[1]) then return u end
end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[4])
return 0
`)

// releaseScript: KEYS[1] global; ARGV the exact value we set.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// claimGlobal reserves the global lock for one token call. It returns the
// owner value to release, or the time the lock is held until.
func (r *Refresher) claimGlobal(ctx context.Context, now time.Time) (value string, blockedUntil time.Time, err error) {
	owner, err := newOwner()
	if err != nil {
		return "", time.Time{}, err
	}
	until := now.Add(r.cfg.GlobalLock)
	u, err := claimScript.Run(ctx, r.rdb, []string{globalKey},
		ms(now), ms(until), owner, r.globalTTL().Milliseconds()).Int64()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("claim global refresh lock: %w", err)
	}
	if u != 0 {
		return "", time.UnixMilli(u), nil
	}
	return strconv.FormatInt(ms(until), 10) + ":" + owner, time.Time{}, nil
}

func (r *Refresher) releaseGlobal(ctx context.Context, value string) error {
	if value == "" {
		return nil
	}
	if err := releaseScript.Run(ctx, r.rdb, []string{globalKey}, value).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("release global refresh lock: %w", err)
	}
	return nil
}

// setGlobal starts the quiet period after a success (any success, urgent
// ones included).
func (r *Refresher) setGlobal(ctx context.Context, now time.Time) error {
	owner, err := newOwner()
	if err != nil {
		return err
	}
	v := strconv.FormatInt(ms(now.Add(r.cfg.GlobalLock)), 10) + ":" + owner
	if err := r.rdb.Set(ctx, globalKey, v, r.globalTTL()).Err(); err != nil {
		return fmt.Errorf("set global refresh lock: %w", err)
	}
	return nil
}

// globalUntil reads until when the global lock holds (zero if free).
func (r *Refresher) globalUntil(ctx context.Context) (time.Time, error) {
	v, err := r.rdb.Get(ctx, globalKey).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read global refresh lock: %w", err)
	}
	for i := 0; i < len(v); i++ {
		if v[i] == ':' {
			v = v[:i]
			break
		}
	}
	return msTime(v), nil
}

// globalTTL only collects the key: the until-time inside decides.
func (r *Refresher) globalTTL() time.Duration { return 2*r.cfg.GlobalLock + time.Minute }

func newOwner() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random owner: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Forget drops an account's refresh state (attempts, cooldown, last error,
// refused-token marker): the account left the pool.
func (r *Refresher) Forget(ctx context.Context, name string) error {
	return r.rdb.Del(ctx, stateKey(name)).Err()
}

// markDead records that the account's current refresh token is of no more
// use (refused, or its attempts ran out before expiry): no timer retries it
// until new credentials arrive or the operator recovers the account.
func (r *Refresher) markDead(ctx context.Context, name, fp string) error {
	k := stateKey(name)
	pipe := r.rdb.TxPipeline()
	pipe.HSet(ctx, k, fDead, fp)
	pipe.PExpire(ctx, k, r.stateTTL())
	_, err := pipe.Exec(ctx)
	return err
}
