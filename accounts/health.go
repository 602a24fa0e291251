package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Passive health (Caddy's max_fails / fail_duration): an account that
// fails MaxFails times in a row within FailWindow cools down for Cooldown.
// A cooling account is treated like a limited one: its keys overflow and new
// keys avoid it. It is never blacklisted for it: 529s and 5xx are the
// upstream's weather, not a dead credential.
const (
	keyCool  = "cr:{pool}:cool"  // HASH account → Unix seconds the cooldown ends
	keyFails = "cr:{pool}:fails" // HASH account → "count,first failure Unix seconds"
	keyUtil  = "cr:{pool}:util"  // HASH account → JSON Utilization (latest headers)
)

// Health configures passive health.
type Health struct {
	MaxFails   int           // consecutive failures that cool an account (default 3)
	FailWindow time.Duration // the failures must fall within it (default 60 s)
	Cooldown   time.Duration // how long a cooled account is avoided (default 60 s)
}

func (h Health) withDefaults() Health {
	if h.MaxFails <= 0 {
		h.MaxFails = 3
	}
	if h.FailWindow <= 0 {
		h.FailWindow = time.Minute
	}
	if h.Cooldown <= 0 {
		h.Cooldown = time.Minute
	}
	return h
}

// SetHealth sets the passive-health thresholds (before serving).
func (p *Pool) SetHealth(h Health) { p.health = h.withDefaults() }

// Health returns the thresholds in use.
func (p *Pool) Health() Health { return p.health.withDefaults() }

// failLua counts one failure of account a, sent by key "by", and cools
// the account when the run of failures reaches max AND came from at least
// two distinct keys: one key whose requests make the upstream fail (its
// content, say) must not cool an account for everyone, and its failures
// are refunded, so it could do that every minute for free. A run older than
// the window starts over. The run is kept as "count,first failure (s),first
// key,1 when another key failed too"; a single key's count stops at max.
// Returns the cooldown's end (Unix s) when this failure started one, else 0.
const failLua = `
local function fail(fails, coolKey, a, now, max, win, cool, by)
  local n, first, k1, multi = 0, now, by, '0'
  local v = redis.call('HGET', fails, a)
  if v then
    local c, f, k, m = string.match(v, '^(%d+),(%d+),?([^,]*),?(%d*)$')
    if c and now - tonumber(f) <= win then
      n, first = tonumber(c), tonumber(f)
      if k ~= '' then k1 = k end
      if m == '1' then multi = '1' end
    end
  end
  n = n + 1
  if k1 ~= by then multi = '1' end
  if n >= max and multi == '1' then
    redis.call('HDEL', fails, a)
    redis.call('HSET', coolKey, a, now + cool)
    return now + cool
  end
  if n > max then n = max end
  redis.call('HSET', fails, a, n .. ',' .. first .. ',' .. k1 .. ',' .. multi)
  return 0
end
`

// failScript records one failure (failLua).
// KEYS: fails, cool. ARGV: account, now (s), max fails, window (s), cooldown (s), key.
var failScript = redis.NewScript(failLua + `
return fail(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
`)

// failedBy names the key behind a failure in the run's record: a prefix
// of its hash is enough to tell keys apart.
func failedBy(keyHash string) string {
	if len(keyHash) > 16 {
		return keyHash[:16]
	}
	return keyHash
}

// Fail records one 529/5xx/connection failure of the account on a request
// of the key whose hash is by (see failLua: one key alone never cools an
// account). It reports the end of the cooldown when this failure started
// one (zero otherwise).
func (p *Pool) Fail(ctx context.Context, account, by string) (time.Time, error) {
	h := p.Health()
	until, err := failScript.Run(ctx, p.rdb, []string{keyFails, keyCool}, account, p.clock.Now().Unix(),
		h.MaxFails, int64(h.FailWindow/time.Second), int64(h.Cooldown/time.Second), failedBy(by)).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("record failure of %s: %w", account, err)
	}
	if until == 0 {
		return time.Time{}, nil
	}
	t := time.Unix(until, 0)
	p.log.WithField("account", account).Warnf("account %s failed %d times in a row, on requests of more than one key: cooling down until %s", account, h.MaxFails, t.UTC().Format(time.RFC3339))
	return t, nil
}

// Succeeded ends a run of failures. The hot path calls it only when the
// state it already read showed failures, so a healthy account costs nothing.
func (p *Pool) Succeeded(ctx context.Context, account string) error {
	if err := p.rdb.HDel(ctx, keyFails, account).Err(); err != nil {
		return fmt.Errorf("reset failures of %s: %w", account, err)
	}
	return nil
}

// Utilization is the latest rate-limit state the upstream reported for an
// account. OAuth (subscription) accounts report the unified 5-hour and
// 7-day windows as fractions 0–1; API-key accounts report per-minute
// request and token budgets.
type Utilization struct {
	Status        string    `json:"status,omitempty"` // unified status: allowed, allowed_warning, rejected
	FiveHour      *float64  `json:"five_hour,omitempty"`
	SevenDay      *float64  `json:"seven_day,omitempty"`
	FiveHourReset int64     `json:"five_hour_reset,omitempty"` // Unix seconds
	SevenDayReset int64     `json:"seven_day_reset,omitempty"`
	Reset         int64     `json:"reset,omitempty"` // unified reset, Unix seconds
	Claim         string    `json:"representative_claim,omitempty"`
	RequestsLimit int64     `json:"requests_limit,omitempty"`
	RequestsLeft  *int64    `json:"requests_remaining,omitempty"`
	RequestsReset string    `json:"requests_reset,omitempty"`
	TokensLimit   int64     `json:"tokens_limit,omitempty"`
	TokensLeft    *int64    `json:"tokens_remaining,omitempty"`
	TokensReset   string    `json:"tokens_reset,omitempty"`
	ObservedAt    time.Time `json:"observed_at"`
}

// Windows returns the utilization per window as fractions 0–1: "5h" and
// "7d" for subscriptions, "requests" and "tokens" (used share of the
// per-minute budget) for API keys.
func (u Utilization) Windows() map[string]float64 {
	out := map[string]float64{}
	if u.FiveHour != nil {
		out["5h"] = *u.FiveHour
	}
	if u.SevenDay != nil {
		out["7d"] = *u.SevenDay
	}
	if u.RequestsLimit > 0 && u.RequestsLeft != nil {
		out["requests"] = 1 - float64(*u.RequestsLeft)/float64(u.RequestsLimit)
	}
	if u.TokensLimit > 0 && u.TokensLeft != nil {
		out["tokens"] = 1 - float64(*u.TokensLeft)/float64(u.TokensLimit)
	}
	return out
}

// ParseUtilization reads the rate-limit headers of an upstream answer; ok
// is false when the answer carried none.
func ParseUtilization(h headerGetter, now time.Time) (Utilization, bool) {
	u := Utilization{ObservedAt: now.UTC()}
	ok := false
	str := func(name string) string { return strings.TrimSpace(h.Get(name)) }
	frac := func(name string) *float64 {
		if v, err := strconv.ParseFloat(str(name), 64); err == nil && v >= 0 {
			ok = true
			return &v
		}
		return nil
	}
	unix := func(name string) int64 {
		v, _ := strconv.ParseInt(str(name), 10, 64)
		return v
	}
	count := func(name string) *int64 {
		if v, err := strconv.ParseInt(str(name), 10, 64); err == nil {
			ok = true
			return &v
		}
		return nil
	}
	const uni = "Anthropic-Ratelimit-Unified-"
	if u.Status = str(uni + "Status"); u.Status != "" {
		ok = true
	}
	u.FiveHour, u.SevenDay = frac(uni+"5h-Utilization"), frac(uni+"7d-Utilization")
	u.FiveHourReset, u.SevenDayReset, u.Reset = unix(uni+"5h-Reset"), unix(uni+"7d-Reset"), unix(uni+"Reset")
	u.Claim = str(uni + "Representative-Claim")
	if l := count("Anthropic-Ratelimit-Requests-Limit"); l != nil {
		u.RequestsLimit = *l
	}
	u.RequestsLeft, u.RequestsReset = count("Anthropic-Ratelimit-Requests-Remaining"), str("Anthropic-Ratelimit-Requests-Reset")
	if l := count("Anthropic-Ratelimit-Tokens-Limit"); l != nil {
		u.TokensLimit = *l
	}
	u.TokensLeft, u.TokensReset = count("Anthropic-Ratelimit-Tokens-Remaining"), str("Anthropic-Ratelimit-Tokens-Reset")
	return u, ok
}

type headerGetter interface{ Get(string) string }

// RejectedUntil reads a 429's headers: whether the subscription's own
// limit rejected the request (unified, 5-hour or 7-day status "rejected")
// and until when: the latest reset among the rejected windows, else
// retry-after, else five minutes.
func RejectedUntil(h headerGetter, now time.Time) (time.Time, bool) {
	const uni = "Anthropic-Ratelimit-Unified"
	rejected := false
	var until int64
	for _, p := range []string{"", "-5h", "-7d"} {
		if strings.EqualFold(strings.TrimSpace(h.Get(uni+p+"-Status")), "rejected") {
			rejected = true
			if v, err := strconv.ParseInt(strings.TrimSpace(h.Get(uni+p+"-Reset")), 10, 64); err == nil && v > until {
				until = v
			}
		}
	}
	if !rejected {
		return time.Time{}, false
	}
	if v, err := strconv.ParseInt(strings.TrimSpace(h.Get(uni+"-Reset")), 10, 64); err == nil && v > until {
		until = v
	}
	if until <= now.Unix() {
		until = 0
		if s, err := strconv.ParseInt(strings.TrimSpace(h.Get("Retry-After")), 10, 64); err == nil && s > 0 {
			until = now.Unix() + s
		}
	}
	if until <= now.Unix() {
		until = now.Add(5 * time.Minute).Unix()
	}
	return time.Unix(until, 0), true
}

// Utilizations reads every account's latest utilization.
func (p *Pool) Utilizations(ctx context.Context) (map[string]Utilization, error) {
	raw, err := p.rdb.HGetAll(ctx, keyUtil).Result()
	if err != nil {
		return nil, fmt.Errorf("read utilization: %w", err)
	}
	return decodeUtils(raw), nil
}

func decodeUtils(raw map[string]string) map[string]Utilization {
	out := make(map[string]Utilization, len(raw))
	for a, v := range raw {
		var u Utilization
		if json.Unmarshal([]byte(v), &u) == nil {
			out[a] = u
		}
	}
	return out
}

// overflowScript applies what the failed attempt taught (limited until a
// reset, or one failure towards a cooldown) to the account that failed, and
// picks the account to serve the request instead: in the tier, not
// blacklisted, not limited, not cooling, not the one that failed; slots do
// not matter (the binding does not move). Ties: lowest 7-day utilization,
// then 5-hour, then name. KEYS: tier set, bl, limited, cool, util, fails.
// ARGV: from, now (s), limited until (s, 0 = no), fail (1/0), max fails,
// window (s), cooldown (s), failing key. Returns {chosen or ”, cooled
// until or 0}.
var overflowScript = redis.NewScript(failLua + `
local from, now = ARGV[1], tonumber(ARGV[2])
local lim = tonumber(ARGV[3])
local cooled = 0
if lim > now then
  local cur = tonumber(redis.call('HGET', KEYS[3], from) or '0')
  if lim > cur then redis.call('HSET', KEYS[3], from, lim) end
end
if ARGV[4] == '1' then
  cooled = fail(KEYS[6], KEYS[4], from, now, tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8])
end
local function util(name)
  local raw = redis.call('HGET', KEYS[5], name)
  if not raw then return 0, 0 end
  local ok, u = pcall(cjson.decode, raw)
  if not ok or type(u) ~= 'table' then return 0, 0 end
  local d7, d5 = tonumber(u['seven_day']) or 0, tonumber(u['five_hour']) or 0
  return d7, d5
end
local members = redis.call('SMEMBERS', KEYS[1])
table.sort(members)
local best, b7, b5 = '', 0, 0
for _, name in ipairs(members) do
  if name ~= from and redis.call('HEXISTS', KEYS[2], name) == 0
    and tonumber(redis.call('HGET', KEYS[3], name) or '0') <= now
    and tonumber(redis.call('HGET', KEYS[4], name) or '0') <= now then
    local d7, d5 = util(name)
    if best == '' or d7 < b7 or (d7 == b7 and d5 < b5) then
      best, b7, b5 = name, d7, d5
    end
  end
end
local out = {best, cooled}
for _, name in ipairs(members) do
  if name ~= from then out[#out + 1] = name end
end
return out
`)

// OverflowMark is what the failed attempt on the bound account taught.
type OverflowMark struct {
	LimitedUntil time.Time // a rejected 429: limited until its reset
	Failure      bool      // a 529, 5xx or connection failure: one towards cooling
	By           string    // the hash of the key whose request failed (Failure)
}

// ErrNoOverflow: no other account of the tier can serve the request.
var ErrNoOverflow = errors.New("no other usable account in the tier")

// Overflow records mark on the account that failed (from) and chooses
// another usable account of the tier to serve one request, in one atomic
// script. It never binds and never takes a slot.
func (p *Pool) Overflow(ctx context.Context, tier, from string, mark OverflowMark) (string, error) {
	pipe := p.rdb.Pipeline()
	c := p.QueueOverflow(ctx, pipe, tier, from, mark)
	_, _ = pipe.Exec(ctx) // the command carries its own error
	to, _, err := c.Result()
	return to, err
}

// OverflowCmd is an overflow choice queued on a pipeline.
type OverflowCmd struct {
	p    *Pool
	cmd  *redis.Cmd
	from string
	mark OverflowMark
	now  time.Time
}

// QueueOverflow queues Overflow's script on pipe, so that a caller can
// read the likely accounts' records in the same round trip.
func (p *Pool) QueueOverflow(ctx context.Context, pipe redis.Pipeliner, tier, from string, mark OverflowMark) *OverflowCmd {
	h := p.Health()
	now := p.clock.Now()
	var lim int64
	if !mark.LimitedUntil.IsZero() {
		lim = mark.LimitedUntil.Unix()
	}
	fail := "0"
	if mark.Failure {
		fail = "1"
	}
	// Eval, not EvalSha: a pipeline cannot retry a NOSCRIPT.
	cmd := overflowScript.Eval(ctx, pipe, []string{keyTier(tier), keyBL, keyLimited, keyCool, keyUtil, keyFails},
		from, now.Unix(), lim, fail, h.MaxFails, int64(h.FailWindow/time.Second), int64(h.Cooldown/time.Second), failedBy(mark.By))
	return &OverflowCmd{p: p, cmd: cmd, from: from, mark: mark, now: now}
}

// Result is the chosen account (ErrNoOverflow when none) and the tier's
// other accounts, for the caller to prefetch next time.
func (c *OverflowCmd) Result() (string, []string, error) {
	res, err := c.cmd.Slice()
	if err != nil {
		return "", nil, fmt.Errorf("overflow from %s: %w", c.from, err)
	}
	log := c.p.log.WithField("account", c.from)
	if lim := c.mark.LimitedUntil; lim.Unix() > c.now.Unix() {
		log.Warnf("upstream usage limit on %s until %s", c.from, lim.UTC().Format(time.RFC3339))
	}
	if cooled, _ := res[1].(int64); cooled > 0 {
		log.Warnf("account %s failed %d times in a row, on requests of more than one key: cooling down until %s", c.from, c.p.Health().MaxFails, time.Unix(cooled, 0).UTC().Format(time.RFC3339))
	}
	var peers []string
	for _, v := range res[2:] {
		if s, ok := v.(string); ok {
			peers = append(peers, s)
		}
	}
	name, _ := res[0].(string)
	if name == "" {
		return "", peers, ErrNoOverflow
	}
	return name, peers, nil
}
