-- forget: take back a job the API wrote but did not accept (the caller got a 503: no replica
-- held it, or the queue refused its task message). Its record, schedule entry, tenant indexes
-- and its count in the stats hash go, as if it had never been written. A job that has moved
-- on (a worker took it before the refusal was known) is left alone.
-- include: lifecycle
-- KEYS[1] job hash   KEYS[2] schedule
-- ARGV[1] job id   ARGV[2] recipient digest ('' for none)
-- Returns 1 when forgotten, 0 when there was nothing to forget or the job had moved on.
local key, id = KEYS[1], ARGV[1]
local status = redis.call('HGET', key, 'status')
if not status or not TJ_INITIAL[status] or redis.call('HEXISTS', key, 'lease') == 1 then
  return 0
end
local owner = redis.call('HGET', key, 'owner') or ''
tj_index_drop(owner, id, status, redis.call('HGET', key, 'campaignId'), ARGV[2])
redis.call('HINCRBY', TJ_KEY_STATS, 'status:' .. status, -1)
redis.call('DEL', key)
redis.call('ZREM', KEYS[2], id)
return 1
