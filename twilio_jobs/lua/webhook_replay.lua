-- webhook_replay: queue an exhausted delivery again from its first attempt.
-- KEYS[1] delivery hash   KEYS[2] webhook schedule   KEYS[3] failed set   KEYS[4] job hash
-- ARGV[1] delivery id   ARGV[2] due   ARGV[3] job's webhook state
-- Returns 1, or 0 when the delivery is not failed (it leaves the failed set).
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'failed' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'pending', 'attempts', 0, 'lastError', '')
redis.call('HDEL', KEYS[1], 'nextAt', 'lastAttemptAt')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if redis.call('HGET', KEYS[4], 'whLatest') == ARGV[1] then
  redis.call('HSET', KEYS[4], 'webhook', ARGV[3])
end
return 1
