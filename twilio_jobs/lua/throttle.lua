-- throttle: AIMD on a 429/20429: halve the account's in-flight limit (at most once per cut
-- interval) and hold the account for Retry-After.
-- include: pacing
-- KEYS[1] AIMD hash   KEYS[2] the set of accounts ever cut (for metrics)
-- ARGV[1] now ('' for Redis's clock)   ARGV[2] configured cap   ARGV[3] recovery per second
-- ARGV[4] cut interval   ARGV[5] retry-after seconds (0: none)   ARGV[6] account SID
-- Returns the new limit.
local now = tj_now(ARGV[1])
local cap, inc = tonumber(ARGV[2]), tonumber(ARGV[3])
local a = redis.call('HMGET', KEYS[1], 'limit', 'at', 'cut', 'hold')
local limit = cap
if a[1] then limit = tj_recovered(a[1], a[2], cap, inc, now) end
if not a[3] or now - tonumber(a[3]) >= tonumber(ARGV[4]) then
  limit = math.max(1, math.floor(limit / 2))
  redis.call('HSET', KEYS[1], 'limit', tostring(limit), 'at', tostring(now), 'cut', tostring(now))
end
local hold = tonumber(a[4] or '0')
if tonumber(ARGV[5]) > 0 and now + tonumber(ARGV[5]) > hold then
  hold = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], 'hold', tostring(hold))
end
local keep = (cap - limit) / math.max(inc, 0.001) + math.max(0, hold - now) + 60
redis.call('EXPIRE', KEYS[1], math.ceil(keep))
redis.call('SADD', KEYS[2], ARGV[6])
return tostring(limit)
