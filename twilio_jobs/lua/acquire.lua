-- acquire: slots for up to `wanted` sends on a lane, every limit checked in one atomic step:
-- the campaign gate, the account's in-flight limit (AIMD, hold), the lane's rate.
-- include: pacing campaign_gate inflight rate
-- KEYS[1] in-flight set   KEYS[2] AIMD hash   KEYS[3] rate lane (GCRA TAT)
-- KEYS[4] campaign hash (or a key never written)   KEYS[5] the account's waiting processes
-- ARGV[1] now ('' for Redis's clock)   ARGV[2] wanted   ARGV[3] lease seconds
-- ARGV[4] lease id prefix   ARGV[5] configured in-flight cap
-- ARGV[6] seconds between sends (0: no rate limit)   ARGV[7] horizon
-- ARGV[8] AIMD recovery per second   ARGV[9..] lease ids to free first
-- Returns {n, start...} (seconds from now) | {0, wait, reason} | {-1, campaign state}.
local now = tj_now(ARGV[1])
for i = 9, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
local closed = tj_campaign_closed(KEYS[4])
if closed then return {-1, closed} end
local room, held, limit = tj_inflight_room(KEYS[1], KEYS[2], now, tonumber(ARGV[5]),
                                           tonumber(ARGV[8]))
if not room then return {0, tostring(held), 'hold'} end
local wanted, holder = tonumber(ARGV[2]), nil
room, holder = tj_inflight_share(KEYS[1], KEYS[5], now, room, limit, ARGV[4])
local n = math.min(wanted, room)
if n <= 0 then
  tj_inflight_asked(KEYS[5], holder, now, false)
  return {0, '0', 'inflight'}
end
tj_inflight_asked(KEYS[5], holder, now, n >= wanted)
local interval = tonumber(ARGV[6])
local first
n, first = tj_rate_fit(KEYS[3], now, n, interval, tonumber(ARGV[7]))
if n == 0 then return {0, tostring(first), 'rate'} end
tj_inflight_take(KEYS[1], n, now + tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[3]))
local reply = {n}
for i = 1, n do
  reply[i + 1] = tostring(first + (i - 1) * interval - now)
end
return reply
