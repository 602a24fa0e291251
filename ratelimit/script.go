package ratelimit

// clockLua defines clock(arg): arg as ms, or the server's TIME when arg is
// "" (production: Redis TIME is the one clock every replica shares).
const clockLua = `
local function clock(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// windowScript is the one script behind admission and Peek. It touches only
// KEYS[1], so it is safe on Redis Cluster.
//
// Arguments:
//   - KEYS[1]: the window, a ZSET of admitted requests (member = request id,
//     score = admission time in ms).
//   - ARGV[1]: limit, requests per window (>= 1).
//   - ARGV[2]: window length in ms.
//   - ARGV[3]: request id to record; "" means peek: count, record nothing,
//     write nothing.
//   - ARGV[4]: now in ms; "" means the server's TIME. Redis TIME is the only
//     clock every replica of the proxy shares, so production leaves it empty;
//     tests with an injected clock pass it explicitly.
//
// A request admitted at t counts while now < t+window: everything scored at
// or below now-window has left. Check and record happen in one script, so
// concurrent callers cannot both take the last place.
//
// Returns {allowed (0|1), count, oldest score in ms (valid when count > 0),
// now in ms}. count is the number in the window after this admission, or the
// current number when refused or peeking.
const windowScript = clockLua + `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local id = ARGV[3]
local now = clock(ARGV[4])
local gone = now - window

if id == '' then
  local live = '(' .. string.format('%d', gone)
  local count = redis.call('ZCOUNT', key, live, '+inf')
  local oldest = 0
  if count > 0 then
    local first = redis.call('ZRANGEBYSCORE', key, live, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    oldest = tonumber(first[2])
  end
  local allowed = 0
  if count < limit then allowed = 1 end
  return {allowed, count, oldest, now}
end

redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', gone))
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, string.format('%d', now), id)
  redis.call('PEXPIRE', key, window)
  count = count + 1
  allowed = 1
end
local oldest = 0
if count > 0 then
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  oldest = tonumber(first[2])
end
return {allowed, count, oldest, now}
`
