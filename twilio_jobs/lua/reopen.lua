-- reopen: put a failed job back in the queue (POST /api/jobs/{id}/retry).
-- include: lifecycle
-- KEYS[1] job hash
-- ARGV[1] now (ISO)   ARGV[2] the new encrypted token ('' to keep the one it has)
-- ARGV[3] '1' when the job's tenant supplied that token itself (a success then proves the
-- account to it, lua/prove.lua)
-- Returns 'ok', 'missing', or the status that forbids it.
local key = KEYS[1]
local status = redis.call('HGET', key, 'status')
if not status then return 'missing' end
if status ~= 'failed' then return status end
tj_move(key, 'failed', 'queued')
redis.call('HSET', key, 'updatedAt', ARGV[1], 'attempts', 0)
redis.call('HDEL', key, 'error', 'result')
-- An unsure job keeps its ledger state: the worker reconciles before it sends again.
if redis.call('HGET', key, 'ledger') ~= 'unknown' then
  redis.call('HDEL', key, 'ledger', 'submittedAt')
end
if ARGV[2] ~= '' then redis.call('HSET', key, 'cred', ARGV[2], 'ownCred', ARGV[3]) end
return 'ok'
