-- acquire: slots for up to `wanted` sends on a lane: the account's in-flight set (leases
-- scored by expiry), its AIMD limit and hold, the lane's rate (GCRA), the campaign's state.
-- include: pacing
-- KEYS[1] in-flight set   KEYS[2] AIMD hash   KEYS[3] rate lane (GCRA TAT)
-- KEYS[4] campaign hash (or a key never written)
-- ARGV[1] now ('' for Redis's clock)   ARGV[2] wanted   ARGV[3] lease seconds
-- ARGV[4] lease id prefix   ARGV[5] configured in-flight cap
-- ARGV[6] seconds between sends (0: no rate limit)   ARGV[7] horizon
-- ARGV[8] AIMD recovery per second   ARGV[9..] lease ids to free first
-- Returns {n, start...} (seconds from now) | {0, wait, reason} | {-1, campaign state}.
local now = tj_now(ARGV[1])
for i = 9, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
local state = redis.call('HGET', KEYS[4], 'state')
if state and state ~= 'active' then return {-1, state} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cap = tonumber(ARGV[5])
local limit = cap
local a = redis.call('HMGET', KEYS[2], 'limit', 'at', 'hold')
if a[1] then
  limit = tj_recovered(a[1], a[2], cap, tonumber(ARGV[8]), now)
end
if a[3] and tonumber(a[3]) > now then return {0, tostring(tonumber(a[3]) - now), 'hold'} end
local n = math.min(tonumber(ARGV[2]), math.floor(limit) - redis.call('ZCARD', KEYS[1]))
if n <= 0 then return {0, '0', 'inflight'} end
local interval = tonumber(ARGV[6])
local first = now
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tat > now then first = tat end
  local horizon = tonumber(ARGV[7])
  local fit = math.floor((now + horizon - first) / interval) + 1
  if fit <= 0 then return {0, tostring(first - horizon - now), 'rate'} end
  n = math.min(n, fit)
  local next_tat = first + n * interval
  redis.call('SET', KEYS[3], tostring(next_tat), 'PX', math.ceil((next_tat - now) * 1000) + 1000)
end
local expiry = now + tonumber(ARGV[3])
local reply = {n}
for i = 1, n do
  redis.call('ZADD', KEYS[1], expiry, ARGV[4] .. ':' .. i)
  reply[i + 1] = tostring(first + (i - 1) * interval - now)
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000) + 1000)
return reply
