package ratelimit

// clockLua is every script's start. It reads the arguments they share
// (KEYS[1] the window, ARGV[1] the limit, ARGV[2] the window's length in
// ms); defines clock(arg): arg as ms, or the server's TIME when arg is ""
// (production: Redis TIME is the one clock every replica shares); and the
// helpers for spares (spare.go): places a replica took ahead of its
// requests. A spare is a member scored spareBase + the time its lease
// ends, so it counts like any admission (ZCARD), sorts after every
// admission (the oldest admission stays ZRANGE 0 0) and is never swept by
// the window's own clean-up. Only its holder frees it (given back unused,
// or refunded); once its lease ends it turns into an admission.
const clockLua = `
local key, limit, window = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local BASE = 1000000000000000
local function fmt(n) return string.format('%d', n) end
-- settle turns the spares whose lease ended into admissions. Their holder
-- died or is late, and may have used them: such a spare is never handed
-- out again (that would admit its place twice); it counts like a request
-- admitted when its lease ended (never earlier than its use) and leaves
-- the window as one. Those whose lease ended a window ago have left and
-- are removed. Returns how many were removed and how many turned.
local function settle(key, now, gone)
  local s = redis.call('ZRANGEBYSCORE', key, fmt(BASE), fmt(BASE + now), 'WITHSCORES')
  if #s == 0 then return 0, 0 end
  local left, args = {}, {}
  for i = 1, #s, 2 do
    local ends = tonumber(s[i + 1]) - BASE
    if ends <= gone then
      left[#left + 1] = s[i]
    else
      args[#args + 1] = fmt(ends)
      args[#args + 1] = s[i]
    end
  end
  if #left > 0 then redis.call('ZREM', key, unpack(left)) end
  if #args > 0 then redis.call('ZADD', key, unpack(args)) end
  return #left, #args / 2
end
-- held is the time until the first live spare's lease ends: a refused
-- request can wait that long for a place another replica holds in reserve.
local function held(key, now)
  local s = redis.call('ZRANGEBYSCORE', key, '(' .. fmt(BASE + now), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #s == 0 then return 0 end
  return tonumber(s[2]) - BASE - now
end
-- spares counts the window's spares (live or not): a count less them is
-- the number of requests admitted, what a customer is told.
local function spares(key)
  return redis.call('ZCOUNT', key, fmt(BASE), '+inf')
end
-- oldest is the score of the oldest admission, 0 when there is none.
local function oldest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 or tonumber(first[2]) >= BASE then return 0 end
  return tonumber(first[2])
end
-- sweep removes the admissions that left the window (scored at or below
-- gone) and returns the oldest admission left (0: none). Usually the
-- oldest is still in: one ZRANGE, no ZREMRANGEBYSCORE.
local function sweep(key, gone)
  local first = oldest(key)
  if first == 0 or first > gone then return first end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(gone))
  return oldest(key)
end
`

// spareBase must equal BASE above: scores at or above it are spares.
const spareBase = 1_000_000_000_000_000

// windowScript is the one script behind admission and Peek. It touches only
// KEYS[1], so it is safe on Redis Cluster.
//
// Arguments:
//   - KEYS[1]: the window, a ZSET of admitted requests (member = request id,
//     score = admission time in ms) and spares (score spareBase + lease end).
//   - ARGV[1]: limit, requests per window (>= 1).
//   - ARGV[2]: window length in ms.
//   - ARGV[3]: request id to record; "" means peek: count, record nothing,
//     write nothing.
//   - ARGV[4]: now in ms; "" means the server's TIME. Redis TIME is the only
//     clock every replica of the proxy shares, so production leaves it empty;
//     tests with an injected clock pass it explicitly.
//   - ARGV[5...] (peek only): ids of spares the caller's requests used and
//     that may not be admissions yet; those still spares count as admitted.
//
// A request admitted at t counts while now < t+window: everything scored at
// or below now-window has left. Check and record happen in one script, so
// concurrent callers cannot both take the last place.
//
// Returns {allowed (0|1), count, oldest admission's score in ms (0: none),
// now in ms, held ms (refused while another replica holds spares)}. count
// is the number of admissions in the window after this one, or the current
// number when refused: spares are places taken, not requests made, so they
// count for the limit but not in what the customer is told.
const windowScript = clockLua + `
local id = ARGV[3]
local now = clock(ARGV[4])
local gone = now - window

if id == '' then
  local count = redis.call('ZCOUNT', key, '(' .. fmt(gone), '(' .. fmt(BASE))
  -- The caller's used spares that are still spares here count as the
  -- requests they admitted; rescored ones are in count, refunded ones gone.
  for i = 5, #ARGV do
    local sc = redis.call('ZSCORE', key, ARGV[i])
    if sc and tonumber(sc) >= BASE then count = count + 1 end
  end
  local first = 0
  local f = redis.call('ZRANGEBYSCORE', key, '(' .. fmt(gone), '(' .. fmt(BASE), 'WITHSCORES', 'LIMIT', 0, 1)
  if #f > 0 then first = tonumber(f[2]) end
  local allowed = 0
  if count < limit then allowed = 1 end
  return {allowed, count, first, now, 0}
end

local first = sweep(key, gone)
local count = redis.call('ZCARD', key)
if count >= limit then
  local left, turned = settle(key, now, gone)
  count = count - left
  if turned > 0 then first = oldest(key) end
end
local allowed = 0
local wait = 0
if count < limit then
  redis.call('ZADD', key, fmt(now), id)
  redis.call('PEXPIRE', key, window)
  count = count + 1
  allowed = 1
  if first == 0 then first = now end
else
  wait = held(key, now)
end
return {allowed, count - spares(key), first, now, wait}
`

// manyScript admits up to n requests into one window in one run, in the
// order given: as many as fit, exactly as n runs of windowScript back to
// back would. ARGV: limit, window ms, now ms ("" = TIME), then the n ids.
// Returns {admitted, admissions before (spares left out), oldest
// admission's score (0: none), now, held ms (some refused while another
// replica holds spares)}.
const manyScript = clockLua + `
local now = clock(ARGV[3])
local n = #ARGV - 3
local first = sweep(key, now - window)
local count = redis.call('ZCARD', key)
if count + n > limit then
  local left, turned = settle(key, now, now - window)
  count = count - left
  if turned > 0 then first = oldest(key) end
end
local take = math.min(math.max(limit - count, 0), n)
if take > 0 then
  local args = {}
  local score = fmt(now)
  for i = 1, take do
    args[2 * i - 1] = score
    args[2 * i] = ARGV[3 + i]
  end
  redis.call('ZADD', key, unpack(args))
  redis.call('PEXPIRE', key, window)
  if first == 0 then first = now end
end
local wait = 0
if take < n then wait = held(key, now) end
return {take, count - spares(key), first, now, wait}
`

// spareScript settles a replica's spares of one window and takes new ones
// (spare.go). ARGV: limit, window ms, now ("" = TIME), lease ms, then nu,
// nr, the nu used spares (now admissions: rescored now if still there),
// the nr unused spares given back, and the ids to reserve. New spares are
// taken only while the window is at most half full, so spares never stand
// between a customer and the last places of a quota. Returns {taken,
// admissions after (rescored spares in, free ones out), oldest admission's
// score (0: none), now}.
const spareScript = clockLua + `
local now = clock(ARGV[3])
local lease = tonumber(ARGV[4])
local nu = tonumber(ARGV[5])
local nr = tonumber(ARGV[6])
local first = 7 + nu + nr
if nr > 0 then redis.call('ZREM', key, unpack(ARGV, 7 + nu, first - 1)) end
local old = sweep(key, now - window)
local _, turned = settle(key, now, now - window)
if turned > 0 then old = oldest(key) end
local count = redis.call('ZCARD', key)
local take = math.min(math.max(math.floor(limit / 2) - count, 0), #ARGV - first + 1)
if nu > 0 then
  -- XX: a spare refunded (ZREM) meanwhile stays gone; one that turned
  -- into an admission at its lease's end is rescored as used now.
  local args = {}
  local score = fmt(now)
  for i = 1, nu do
    args[2 * i - 1] = score
    args[2 * i] = ARGV[6 + i]
  end
  redis.call('ZADD', key, 'XX', unpack(args))
end
if take > 0 then
  local args = {}
  local ends = fmt(BASE + now + lease)
  for i = 1, take do
    args[2 * i - 1] = ends
    args[2 * i] = ARGV[first + i - 1]
  end
  redis.call('ZADD', key, unpack(args))
  redis.call('PEXPIRE', key, window)
end
if old == 0 and nu > 0 then old = now end
return {take, count + take - spares(key), old, now}
`
