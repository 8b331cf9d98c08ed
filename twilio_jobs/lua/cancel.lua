-- cancel: end a job that has not been handed to Twilio.
-- include: lifecycle
-- KEYS[1] job hash   KEYS[2] schedule
-- ARGV[1] now (ISO)   ARGV[2] error (JSON)   ARGV[3] result (JSON)   ARGV[4] job id
-- Returns 'cancelled', 'missing', the final status it already has, or 'busy' when it may be
-- with Twilio now.
local key = KEYS[1]
local status = redis.call('HGET', key, 'status')
if not status then return 'missing' end
if status == 'cancelled' then return 'cancelled' end
if TJ_FINAL[status] then return status end
local ledger = redis.call('HGET', key, 'ledger')
if ledger == 'submitting' or ledger == 'unknown' or status == 'running' then return 'busy' end
tj_move(key, status, 'cancelled')
redis.call('HSET', key, 'updatedAt', ARGV[1], 'error', ARGV[2], 'result', ARGV[3])
redis.call('HDEL', key, 'cred')
redis.call('ZREM', KEYS[2], ARGV[4])
return 'cancelled'
