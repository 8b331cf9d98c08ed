-- webhook_finish: record an attempt's outcome, if the lease still holds.
-- KEYS[1] delivery hash   KEYS[2] webhook schedule   KEYS[3] failed set   KEYS[4] job hash
-- ARGV[1] lease token   ARGV[2] status   ARGV[3] last error   ARGV[4] attempted at (ISO)
-- ARGV[5] due ('' for none)   ARGV[6] delivery id   ARGV[7] now   ARGV[8] job's webhook state
-- ARGV[9] the result TTL (seconds)
-- A delivery lives at least keys.WEBHOOK_MIN_TTL so that its retries can run out; once it is
-- delivered it is kept only as long as a record created with it (createdAt + the result TTL).
-- Returns 1, or 0 when the lease was lost.
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'lastError', ARGV[3], 'lastAttemptAt', ARGV[4])
redis.call('HDEL', KEYS[1], 'lease', 'leaseUntil', 'nextAt')
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'nextAt', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
else
  redis.call('ZREM', KEYS[2], ARGV[6])
end
if ARGV[2] == 'failed' then redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6]) end
if ARGV[2] == 'delivered' then
  local created = tonumber(redis.call('HGET', KEYS[1], 'createdAt')) or tonumber(ARGV[7])
  local left = math.floor((created + tonumber(ARGV[9]) - tonumber(ARGV[7])) * 1000)
  if left < redis.call('PTTL', KEYS[1]) then redis.call('PEXPIRE', KEYS[1], math.max(left, 1)) end
end
if redis.call('HGET', KEYS[4], 'whLatest') == ARGV[6] then
  redis.call('HSET', KEYS[4], 'webhook', ARGV[8])
end
return 1
