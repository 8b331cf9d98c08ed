-- inflight: requests in flight per account under its AIMD limit (twilio_jobs.pacing.inflight).
-- include: pacing
--
-- tj_inflight_room(inflight_key, aimd_key, now, cap, per_second): how many more requests may
-- start now (0 or less: none), or nil and the seconds left while a Retry-After holds the
-- account. Leases past their expiry are dropped first.
-- tj_inflight_take(inflight_key, n, expiry, prefix, lease_seconds): record n leases.
-- tj_inflight_share(inflight_key, asks_key, now, room, limit, prefix): of `room`, what the
-- asking process may take (and its holder id), and tj_inflight_asked(asks_key, holder, now,
-- met): note whether it got all it asked for. A process whose sends end and start again in one
-- step (the event loop's pump hands its finished slots back in the acquire that takes new
-- ones) would otherwise keep every slot of a full account for as long as it has work, and the
-- other processes' senders would find it full all that time. So every process that got fewer
-- slots than it asked for in the last TJ_ASK_WINDOW seconds counts as waiting, and while others
-- wait, a process holds no more than its share of the limit (rounded up).

local function tj_inflight_room(inflight, aimd, now, cap, per_second)
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local limit = cap
  local a = redis.call('HMGET', aimd, 'limit', 'at', 'hold')
  if a[1] then
    limit = tj_recovered(a[1], a[2], cap, per_second, now)
  end
  if a[3] and tonumber(a[3]) > now then return nil, tonumber(a[3]) - now end
  return math.floor(limit) - redis.call('ZCARD', inflight), nil, math.floor(limit)
end

local function tj_inflight_take(inflight, n, expiry, prefix, lease_seconds)
  for i = 1, n do
    redis.call('ZADD', inflight, expiry, prefix .. ':' .. i)
  end
  redis.call('PEXPIRE', inflight, math.ceil(lease_seconds * 1000) + 1000)
end

local TJ_ASK_WINDOW = 0.25

local function tj_inflight_share(inflight, asks, now, room, limit, prefix)
  -- Lease ids are `<holder>:<n>:<i>` and the prefix `<holder>:<n>` (twilio_jobs.pacing.pacer).
  local holder = string.match(prefix, '^(.*):[^:]*$') or prefix
  redis.call('ZREMRANGEBYSCORE', asks, '-inf', now - TJ_ASK_WINDOW)
  local others = redis.call('ZCARD', asks)
  if redis.call('ZSCORE', asks, holder) then others = others - 1 end
  if others <= 0 then return room, holder end
  local head, mine = holder .. ':', 0
  for _, lease in ipairs(redis.call('ZRANGE', inflight, 0, -1)) do
    if string.sub(lease, 1, #head) == head then mine = mine + 1 end
  end
  return math.min(room, math.ceil(limit / (others + 1)) - mine), holder
end

local function tj_inflight_asked(asks, holder, now, met)
  if met then
    redis.call('ZREM', asks, holder)
  else
    redis.call('ZADD', asks, now, holder)
    redis.call('PEXPIRE', asks, 60000)
  end
end
