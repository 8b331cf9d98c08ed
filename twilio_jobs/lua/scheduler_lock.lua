-- scheduler_lock: take or keep the lock that makes one scheduler active at a time.
-- KEYS[1] lock   ARGV[1] holder token   ARGV[2] lease (ms)
-- Returns 1 when the caller holds the lock now.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
