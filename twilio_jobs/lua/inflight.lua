-- inflight: requests in flight per account under its AIMD limit (twilio_jobs.pacing.inflight).
-- include: pacing
--
-- tj_inflight_room(inflight_key, aimd_key, now, cap, per_second): how many more requests may
-- start now (0 or less: none), or nil and the seconds left while a Retry-After holds the
-- account. Leases past their expiry are dropped first.
-- tj_inflight_take(inflight_key, n, expiry, prefix, lease_seconds): record n leases.

local function tj_inflight_room(inflight, aimd, now, cap, per_second)
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local limit = cap
  local a = redis.call('HMGET', aimd, 'limit', 'at', 'hold')
  if a[1] then
    limit = tj_recovered(a[1], a[2], cap, per_second, now)
  end
  if a[3] and tonumber(a[3]) > now then return nil, tonumber(a[3]) - now end
  return math.floor(limit) - redis.call('ZCARD', inflight)
end

local function tj_inflight_take(inflight, n, expiry, prefix, lease_seconds)
  for i = 1, n do
    redis.call('ZADD', inflight, expiry, prefix .. ':' .. i)
  end
  redis.call('PEXPIRE', inflight, math.ceil(lease_seconds * 1000) + 1000)
end
