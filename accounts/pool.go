package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/clock"
)

// Pool errors. The proxy maps them to docs/contract.md's 503 messages.
var (
	// ErrFull: every usable account of the tier has all its slots taken.
	ErrFull = errors.New("all accounts of the tier are at capacity")
	// ErrEmpty: the tier has no usable account at all.
	ErrEmpty = errors.New("no accounts available in the tier")
	// ErrUnknownAccount: an explicit binding names an account the tier lacks.
	ErrUnknownAccount = errors.New("unknown account for the tier")
	// ErrBlacklisted: an explicit binding names a blacklisted account.
	ErrBlacklisted = errors.New("account is blacklisted")
	// ErrKeyInactive: the key was revoked (Retire) or has expired; it may
	// not take a slot.
	ErrKeyInactive = errors.New("key is revoked or expired")
)

// All pool state shares the {pool} hash tag: binding must pick an account
// and take its slot in one atomic step, which in a Redis Cluster requires
// every key the script touches to live in one slot.
const (
	keyBind    = "cr:{pool}:bind"
	keyUsed    = "cr:{pool}:used"
	keyBL      = "cr:{pool}:bl"
	keyLimited = "cr:{pool}:limited"
	keyTiers   = "cr:{pool}:tiers" // SET of tier names that have a member set
	// keyGone: HASH key hash → unix ms of its revocation. It lives in the
	// pool's slot so that binding can refuse a revoked key atomically (the
	// key records are spread over the cluster).
	keyGone = "cr:{pool}:gone"
)

func keyTier(tier string) string { return "cr:{pool}:tier:" + tier }

// Pool binds client keys (by hash) to accounts of their tier.
type Pool struct {
	rdb    redis.UniversalClient
	clock  clock.Clock
	log    logrus.FieldLogger
	health Health
}

// NewPool returns the pool on rdb.
func NewPool(rdb redis.UniversalClient, clk clock.Clock, log logrus.FieldLogger) *Pool {
	return &Pool{rdb: rdb, clock: clk, log: log}
}

// Binding is the account serving a key, with the account's slot use.
type Binding struct {
	Account string
	Used    int
	Slots   int
	// New is true when this call made the binding.
	New bool
}

// bindScript picks the usable account of the tier with a free slot, in
// this order: accounts that are neither limited nor cooling first, then the
// fewest used slots, the lowest 7-day utilization, the lowest 5-hour
// utilization, the name. It takes the slot and records the binding, all
// atomically. An existing binding to a usable account is returned
// untouched; a binding to a blacklisted or removed account is moved and the
// old slot given back.
// KEYS: bind, used, bl, limited, tier set, gone, cool, util.
// ARGV: key hash, slots per account, now (unix s), wanted account or "",
// "1" to leave an existing binding alone (restoring from the ledger), the
// key's expiry (unix ms, 0: never), now (unix ms). A key retired (revoked)
// or past its expiry is refused in the same step, so a request that
// authenticated just before a revocation cannot take the slot back.
var bindScript = redis.NewScript(`
local h, slots, now, want = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local exp = tonumber(ARGV[6])
if redis.call('HEXISTS', KEYS[6], h) == 1 or (exp > 0 and tonumber(ARGV[7]) >= exp) then
  return {'gone'}
end
local cur = redis.call('HGET', KEYS[1], h)
if cur and ARGV[5] == '1' then return {'bound', cur} end
local function usable(name)
  return redis.call('SISMEMBER', KEYS[5], name) == 1 and redis.call('HEXISTS', KEYS[3], name) == 0
end
local function used(name) return tonumber(redis.call('HGET', KEYS[2], name) or '0') end
if cur and usable(cur) and (want == '' or want == cur) then
  return {'ok', cur, used(cur), 0}
end
local function util(name)
  local raw = redis.call('HGET', KEYS[8], name)
  if not raw then return 0, 0 end
  local ok, u = pcall(cjson.decode, raw)
  if not ok or type(u) ~= 'table' then return 0, 0 end
  return tonumber(u['seven_day']) or 0, tonumber(u['five_hour']) or 0
end
local best, bestUsed, bestLim, b7, b5 = nil, 0, 0, 0, 0
local any = false
if want ~= '' then
  if redis.call('SISMEMBER', KEYS[5], want) == 0 then return {'unknown'} end
  if redis.call('HEXISTS', KEYS[3], want) == 1 then return {'blacklisted'} end
  any = true
  if used(want) < slots then best, bestUsed = want, used(want) end
else
  local members = redis.call('SMEMBERS', KEYS[5])
  table.sort(members)
  for _, name in ipairs(members) do
    if redis.call('HEXISTS', KEYS[3], name) == 0 then
      any = true
      local u = used(name)
      if u < slots then
        local lim = 0
        if tonumber(redis.call('HGET', KEYS[4], name) or '0') > now
          or tonumber(redis.call('HGET', KEYS[7], name) or '0') > now then lim = 1 end
        local d7, d5 = util(name)
        if best == nil or lim < bestLim or (lim == bestLim and (u < bestUsed
          or (u == bestUsed and (d7 < b7 or (d7 == b7 and d5 < b5))))) then
          best, bestUsed, bestLim, b7, b5 = name, u, lim, d7, d5
        end
      end
    end
  end
end
if best == nil then
  if any then return {'full'} end
  return {'empty'}
end
if cur and used(cur) > 0 then redis.call('HINCRBY', KEYS[2], cur, -1) end
local n = redis.call('HINCRBY', KEYS[2], best, 1)
redis.call('HSET', KEYS[1], h, best)
return {'ok', best, n, 1}
`)

// Bind returns the key's account, binding it on first use (or after its
// account was blacklisted or removed) to the least-loaded usable account.
func (p *Pool) Bind(ctx context.Context, keyHash, tier string, slots int) (Binding, error) {
	return p.bind(ctx, keyHash, tier, slots, "")
}

// BindKey is Bind for a key that expires at expires (zero: never): past
// it, or once the key was retired, it is refused with ErrKeyInactive.
func (p *Pool) BindKey(ctx context.Context, keyHash, tier string, slots int, expires time.Time) (Binding, error) {
	return p.runBind(ctx, keyHash, tier, slots, "", false, expires)
}

// BindTo binds the key to a named account of its tier (key issue --account).
func (p *Pool) BindTo(ctx context.Context, keyHash, tier string, slots int, account string) (Binding, error) {
	if account == "" {
		return Binding{}, fmt.Errorf("%w: empty name", ErrUnknownAccount)
	}
	return p.bind(ctx, keyHash, tier, slots, account)
}

func (p *Pool) bind(ctx context.Context, keyHash, tier string, slots int, want string) (Binding, error) {
	return p.runBind(ctx, keyHash, tier, slots, want, false, time.Time{})
}

// errAlreadyBound: RestoreBinding found a live binding and left it alone.
var errAlreadyBound = errors.New("already bound")

// runBind runs the bind script and reads its answer.
func (p *Pool) runBind(ctx context.Context, keyHash, tier string, slots int, want string, onlyUnbound bool, expires time.Time) (Binding, error) {
	flag := "0"
	if onlyUnbound {
		flag = "1"
	}
	var exp int64
	if !expires.IsZero() {
		exp = expires.UnixMilli()
	}
	now := p.clock.Now()
	res, err := bindScript.Run(ctx, p.rdb,
		[]string{keyBind, keyUsed, keyBL, keyLimited, keyTier(tier), keyGone, keyCool, keyUtil},
		keyHash, slots, now.Unix(), want, flag, exp, now.UnixMilli()).Slice()
	return p.bindAnswer(res, err, tier, slots, want)
}

func (p *Pool) bindAnswer(res []any, err error, tier string, slots int, want string) (Binding, error) {
	if err != nil {
		return Binding{}, fmt.Errorf("bind: %w", err)
	}
	switch res[0] {
	case "ok":
		b := Binding{Account: res[1].(string), Used: int(res[2].(int64)), Slots: slots, New: res[3].(int64) == 1}
		if b.New {
			p.log.WithFields(logrus.Fields{"tier": tier}).Infof("assigned to account: %s (slots: %d/%d)", b.Account, b.Used, slots)
		}
		return b, nil
	case "full":
		if want != "" {
			return Binding{}, fmt.Errorf("%w: %s has no free slot", ErrFull, want)
		}
		return Binding{}, ErrFull
	case "empty":
		return Binding{}, ErrEmpty
	case "unknown":
		return Binding{}, fmt.Errorf("%w: %q is not in tier %s", ErrUnknownAccount, want, tier)
	case "blacklisted":
		return Binding{}, fmt.Errorf("%w: %s", ErrBlacklisted, want)
	case "bound":
		return Binding{Account: res[1].(string)}, errAlreadyBound
	case "gone":
		return Binding{}, ErrKeyInactive
	}
	return Binding{}, fmt.Errorf("bind: unexpected answer %v", res)
}

// QueueBound adds the read of a key's current binding to a pipeline.
func (p *Pool) QueueBound(ctx context.Context, pipe redis.Pipeliner, keyHash string) *redis.StringCmd {
	return pipe.HGet(ctx, keyBind, keyHash)
}

// State is an account's pool state as the hot path needs it. Its slot
// count is not read: nothing on the hot path decides by it.
type State struct {
	InTier      bool
	Blacklisted bool
	LimitedTill time.Time
	CoolingTill time.Time
	// Fails is the current run of consecutive failures (passive health).
	Fails int
}

// Unusable reports whether the account must not be called now: limited
// by the upstream or cooling down. Its keys overflow meanwhile.
func (s State) Unusable(now time.Time) bool {
	return s.LimitedTill.After(now) || s.CoolingTill.After(now)
}

// StateCmds are the pipelined reads behind a State.
type StateCmds struct {
	member  *redis.BoolCmd
	bl      *redis.BoolCmd
	limited *redis.StringCmd
	cool    *redis.StringCmd
	fails   *redis.StringCmd
}

// QueueState adds the reads of an account's pool state to a pipeline.
func (p *Pool) QueueState(ctx context.Context, pipe redis.Pipeliner, tier, account string) StateCmds {
	return StateCmds{
		member:  pipe.SIsMember(ctx, keyTier(tier), account),
		bl:      pipe.HExists(ctx, keyBL, account),
		limited: pipe.HGet(ctx, keyLimited, account),
		cool:    pipe.HGet(ctx, keyCool, account),
		fails:   pipe.HGet(ctx, keyFails, account),
	}
}

// Result decodes the pipelined reads.
func (c StateCmds) Result() (State, error) {
	var s State
	var err error
	if s.InTier, err = c.member.Result(); err != nil {
		return s, err
	}
	if s.Blacklisted, err = c.bl.Result(); err != nil {
		return s, err
	}
	v, err := c.limited.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return s, err
	}
	if secs, _ := strconv.ParseInt(v, 10, 64); secs > 0 {
		s.LimitedTill = time.Unix(secs, 0)
	}
	if secs, _ := strconv.ParseInt(c.cool.Val(), 10, 64); secs > 0 {
		s.CoolingTill = time.Unix(secs, 0)
	}
	if n, _, ok := strings.Cut(c.fails.Val(), ","); ok {
		s.Fails, _ = strconv.Atoi(n)
	}
	return s, nil
}

var releaseScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if tonumber(redis.call('HGET', KEYS[2], cur) or '0') > 0 then redis.call('HINCRBY', KEYS[2], cur, -1) end
return 1
`)

// Release frees the key's slot (revoked or expired key).
func (p *Pool) Release(ctx context.Context, keyHash string) (bool, error) {
	n, err := releaseScript.Run(ctx, p.rdb, []string{keyBind, keyUsed}, keyHash).Int()
	if err != nil {
		return false, fmt.Errorf("release: %w", err)
	}
	return n == 1, nil
}

var retireScript = redis.NewScript(`
redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if tonumber(redis.call('HGET', KEYS[2], cur) or '0') > 0 then redis.call('HINCRBY', KEYS[2], cur, -1) end
return 1
`)

// Retire frees a revoked key's slot and, in the same step, marks it so
// that no later bind (an in-flight request that authenticated before the
// revocation) can take a slot again. It reports whether a slot was freed.
func (p *Pool) Retire(ctx context.Context, keyHash string) (bool, error) {
	n, err := retireScript.Run(ctx, p.rdb, []string{keyBind, keyUsed, keyGone}, keyHash, p.clock.Now().UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("retire: %w", err)
	}
	return n == 1, nil
}

var forgetKeyScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if tonumber(redis.call('HGET', KEYS[2], cur) or '0') > 0 then redis.call('HINCRBY', KEYS[2], cur, -1) end
end
redis.call('HDEL', KEYS[3], ARGV[1])
return 0
`)

// ForgetKey drops every piece of pool state about a key (retention: the
// key was archived): its binding, its slot and its retired mark.
func (p *Pool) ForgetKey(ctx context.Context, keyHash string) error {
	if err := forgetKeyScript.Run(ctx, p.rdb, []string{keyBind, keyUsed, keyGone}, keyHash).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("forget key: %w", err)
	}
	return nil
}

// Bound returns the key's account, "" when unbound.
func (p *Pool) Bound(ctx context.Context, keyHash string) (string, error) {
	v, err := p.rdb.HGet(ctx, keyBind, keyHash).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// BoundMany returns the live bindings of the given keys (one HMGET), for a
// page of a key list; unbound keys are left out.
func (p *Pool) BoundMany(ctx context.Context, keyHashes []string) (map[string]string, error) {
	out := make(map[string]string, len(keyHashes))
	if len(keyHashes) == 0 {
		return out, nil
	}
	vs, err := p.rdb.HMGet(ctx, keyBind, keyHashes...).Result()
	if err != nil {
		return nil, err
	}
	for i, v := range vs {
		if s, ok := v.(string); ok && s != "" {
			out[keyHashes[i]] = s
		}
	}
	return out, nil
}

// BlacklistEntry says why and since when an account is blacklisted.
type BlacklistEntry struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Blacklist takes an account out of service. Its keys move to another
// account on their next request. Re-blacklisting keeps the first entry.
func (p *Pool) Blacklist(ctx context.Context, account, reason string) error {
	e, _ := json.Marshal(BlacklistEntry{Reason: reason, Since: p.clock.Now().UTC()})
	added, err := p.rdb.HSetNX(ctx, keyBL, account, e).Result()
	if err != nil {
		return fmt.Errorf("blacklist %s: %w", account, err)
	}
	if added {
		p.log.WithField("account", account).Warnf("Adding %s to blacklist: %s", account, reason)
	}
	return nil
}

// Recover takes an account off the blacklist; it reports whether it was on
// it. A disabled account is refused with ErrDisabled and left as it is: its
// file says "disabled", so only enable (which edits the file) may end it,
// or the next sync would blacklist it again behind the operator's back.
func (p *Pool) Recover(ctx context.Context, account string) (bool, error) {
	n, err := recoverScript.Run(ctx, p.rdb, []string{keyBL}, account, disabledMarker()).Int()
	if err != nil {
		return false, fmt.Errorf("recover %s: %w", account, err)
	}
	if n < 0 {
		return false, fmt.Errorf("recover %s: %w", account, ErrDisabled)
	}
	if n > 0 {
		p.log.WithField("account", account).Infof("Removed %s from blacklist", account)
	}
	return n > 0, nil
}

// recoverScript removes the entry unless it is a disable (answers -1), in
// one step so a disable racing a recover is never lost.
var recoverScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
if string.find(cur, ARGV[2], 1, true) ~= nil then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`)

// Limit marks the account as limited by the upstream until the given time.
// Its bindings stay; new bindings prefer other accounts meanwhile.
func (p *Pool) Limit(ctx context.Context, account string, until time.Time) error {
	if err := p.rdb.HSet(ctx, keyLimited, account, until.Unix()).Err(); err != nil {
		return fmt.Errorf("limit %s: %w", account, err)
	}
	p.log.WithField("account", account).Warnf("upstream usage limit on %s until %s", account, until.UTC().Format(time.RFC3339))
	return nil
}

// SetTier puts the account in the tier's member set (and in no other).
func (p *Pool) SetTier(ctx context.Context, account, tier string) error {
	_, err := setTierScript.Run(ctx, p.rdb, []string{keyTiers, keyTier(tier)}, account, tier, keyTier("")).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("set tier of %s: %w", account, err)
	}
	return nil
}

// setTierScript builds other tiers' set names from a prefix; they share the
// {pool} tag, so the cluster slot is the same as the declared keys'.
var setTierScript = redis.NewScript(`
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if t ~= ARGV[2] then redis.call('SREM', ARGV[3] .. t, ARGV[1]) end
end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`)

// removeScript drops an account and every piece of pool state about it;
// the keys bound to it become unbound and bind again on their next request.
var removeScript = redis.NewScript(`
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('SREM', ARGV[2] .. t, ARGV[1])
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
for i = 6, #KEYS do redis.call('HDEL', KEYS[i], ARGV[1]) end
local moved = 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if all[i+1] == ARGV[1] then redis.call('HDEL', KEYS[2], all[i]); moved = moved + 1 end
end
return moved
`)

// Remove takes the account out of the pool with all its pool state and
// returns how many keys lost their binding.
func (p *Pool) Remove(ctx context.Context, account string) (int, error) {
	n, err := removeScript.Run(ctx, p.rdb, []string{keyTiers, keyBind, keyUsed, keyBL, keyLimited, keyCool, keyFails, keyUtil, keyProbe}, account, keyTier("")).Int()
	if err != nil {
		return 0, fmt.Errorf("remove %s: %w", account, err)
	}
	return n, nil
}

// recountScript recomputes slots used from the live bindings: the counter is
// derived state and a sync must not trust it. Bindings to accounts no longer
// in any tier are dropped.
var recountScript = redis.NewScript(`
local members = {}
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, a in ipairs(redis.call('SMEMBERS', ARGV[1] .. t)) do members[a] = true end
end
local counts = {}
local dropped = 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local a = all[i+1]
  if members[a] then counts[a] = (counts[a] or 0) + 1
  else redis.call('HDEL', KEYS[2], all[i]); dropped = dropped + 1 end
end
redis.call('DEL', KEYS[3])
for a, n in pairs(counts) do redis.call('HSET', KEYS[3], a, n) end
return dropped
`)

// Recount rebuilds the slot counters from the bindings.
func (p *Pool) Recount(ctx context.Context) (dropped int, err error) {
	n, err := recountScript.Run(ctx, p.rdb, []string{keyTiers, keyBind, keyUsed}, keyTier("")).Int()
	if err != nil {
		return 0, fmt.Errorf("recount slots: %w", err)
	}
	return n, nil
}

// SlotsUsed returns the slot counters: account → slots taken.
func (p *Pool) SlotsUsed(ctx context.Context) (map[string]int, error) {
	m, err := p.rdb.HGetAll(ctx, keyUsed).Result()
	if err != nil {
		return nil, fmt.Errorf("read slot counters: %w", err)
	}
	out := make(map[string]int, len(m))
	for a, v := range m {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("slot counter of %s: %w", a, err)
		}
		out[a] = n
	}
	return out, nil
}

// Bindings returns every key hash → account binding.
//
// It reads the hash with HSCAN, 1,000 fields a call, not one HGETALL: at
// 100,000 keys that was an 8 MB reply which held Redis (and every request
// waiting on it) for tens of milliseconds and, on a loaded machine, ran
// past the client's read timeout, failing the sync that called it. The
// read is not one snapshot: a binding made or released meanwhile may be
// seen or not, as with a read just before or after it.
func (p *Pool) Bindings(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	var cursor uint64
	for {
		kv, next, err := p.rdb.HScan(ctx, keyBind, cursor, "", 1000).Result()
		if err != nil {
			return nil, err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		if next == 0 {
			return out, nil
		}
		cursor = next
	}
}

// RestoreBinding re-creates a binding read from the ledger when the key has
// none, if the account is in the tier, not blacklisted and has a free slot.
// It reports whether the binding was written.
func (p *Pool) RestoreBinding(ctx context.Context, keyHash, tier string, slots int, account string) (bool, error) {
	if account == "" {
		return false, nil
	}
	// One script: a request that bound the key meanwhile is never undone.
	_, err := p.runBind(ctx, keyHash, tier, slots, account, true, time.Time{})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errAlreadyBound), errors.Is(err, ErrFull), errors.Is(err, ErrKeyInactive), errors.Is(err, ErrUnknownAccount), errors.Is(err, ErrBlacklisted):
		return false, nil // it binds afresh on its next request
	default:
		return false, err
	}
}

// AccountView is one account's line in `pool`.
type AccountView struct {
	Name        string          `json:"name"`
	Tier        string          `json:"tier"`
	SlotsUsed   int             `json:"slots_used"`
	SlotsTotal  int             `json:"slots_total"`
	BoundKeys   int             `json:"bound_keys"`
	Blacklist   *BlacklistEntry `json:"blacklist,omitempty"`
	LimitedTill *time.Time      `json:"limited_until,omitempty"`
	CoolingTill *time.Time      `json:"cooling_until,omitempty"`
	Utilization *Utilization    `json:"utilization,omitempty"`
	LastProbe   *ProbeResult    `json:"last_probe,omitempty"`
}

// View reads the pool of the given tiers (slots per account from slotsOf).
func (p *Pool) View(ctx context.Context, tierNames []string, slotsOf func(string) int) (map[string][]AccountView, error) {
	return p.view(ctx, tierNames, slotsOf, true)
}

// ViewSlots is View without BoundKeys (left 0), for readers that poll
// (the alert watcher every 5 s, metrics): counting them reads every
// binding, about 8 MB at 100,000 keys.
func (p *Pool) ViewSlots(ctx context.Context, tierNames []string, slotsOf func(string) int) (map[string][]AccountView, error) {
	return p.view(ctx, tierNames, slotsOf, false)
}

func (p *Pool) view(ctx context.Context, tierNames []string, slotsOf func(string) int, withBound bool) (map[string][]AccountView, error) {
	pipe := p.rdb.Pipeline()
	members := make([]*redis.StringSliceCmd, len(tierNames))
	for i, t := range tierNames {
		members[i] = pipe.SMembers(ctx, keyTier(t))
	}
	used := pipe.HGetAll(ctx, keyUsed)
	bl := pipe.HGetAll(ctx, keyBL)
	lim := pipe.HGetAll(ctx, keyLimited)
	var bind *redis.MapStringStringCmd
	if withBound {
		bind = pipe.HGetAll(ctx, keyBind)
	}
	cool := pipe.HGetAll(ctx, keyCool)
	utilRaw := pipe.HGetAll(ctx, keyUtil)
	probes := pipe.HGetAll(ctx, keyProbe)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read pool: %w", err)
	}
	bound := map[string]int{}
	if bind != nil {
		for _, a := range bind.Val() {
			bound[a]++
		}
	}
	now := p.clock.Now()
	utils := decodeUtils(utilRaw.Val())
	out := map[string][]AccountView{}
	for i, t := range tierNames {
		names := members[i].Val()
		sort.Strings(names)
		views := make([]AccountView, 0, len(names))
		for _, n := range names {
			u, _ := strconv.Atoi(used.Val()[n])
			v := AccountView{Name: n, Tier: t, SlotsUsed: u, SlotsTotal: slotsOf(t), BoundKeys: bound[n]}
			if raw, ok := bl.Val()[n]; ok {
				var e BlacklistEntry
				_ = json.Unmarshal([]byte(raw), &e)
				v.Blacklist = &e
			}
			if secs, _ := strconv.ParseInt(lim.Val()[n], 10, 64); secs > now.Unix() {
				tl := time.Unix(secs, 0).UTC()
				v.LimitedTill = &tl
			}
			if secs, _ := strconv.ParseInt(cool.Val()[n], 10, 64); secs > now.Unix() {
				ct := time.Unix(secs, 0).UTC()
				v.CoolingTill = &ct
			}
			if u, ok := utils[n]; ok {
				v.Utilization = &u
			}
			if raw, ok := probes.Val()[n]; ok {
				var pr ProbeResult
				if json.Unmarshal([]byte(raw), &pr) == nil {
					v.LastProbe = &pr
				}
			}
			views = append(views, v)
		}
		out[t] = views
	}
	return out, nil
}
