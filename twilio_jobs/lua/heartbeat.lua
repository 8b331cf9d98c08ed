-- heartbeat: a worker's beat, in the Redis server's time, for each of its ids.
-- KEYS[1] workers (sorted set)
-- ARGV[1..] worker ids
-- Returns the server time (unix seconds).
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for _, id in ipairs(ARGV) do
  redis.call('ZADD', KEYS[1], now, id)
end
return tostring(now)
