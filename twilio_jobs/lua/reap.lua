-- reap: take the workers whose heartbeat lapsed, for a reaper to hand their work out again.
-- A taken id's score moves to now: no other reaper takes it for another `dead after` seconds,
-- and if this reaper dies midway, one takes it then.
-- KEYS[1] workers (sorted set)
-- ARGV[1] dead after (seconds)   ARGV[2] at most this many ids
-- Returns the ids taken.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]),
                        'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(dead) do
  redis.call('ZADD', KEYS[1], now, id)
end
return dead
