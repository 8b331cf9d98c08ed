-- claim: the send ledger's lease on a job (twilio_jobs.ledger). Of any number of deliveries of
-- a job's task, one gets it; a lease that ran out turns into a reconciliation, never a re-send.
-- include: lifecycle gates
-- KEYS[1] job hash   KEYS[2] schedule   KEYS[3] the claiming process's claims set
-- ARGV[1] now (unix)   ARGV[2] lease seconds   ARGV[3] lease token   ARGV[4] now (ISO)
-- ARGV[5] job id   ARGV[6] the claiming process's worker id ('' for none)
-- Returns {mode, attempts, submittedAt, kind, params, accountSid, cred, callbackUrl,
-- campaignId, error, createdAt, trace, window} with mode send | reconcile;
-- or {'busy'|'early', until}; or {'final', status}; or {'missing'|'paused'|'cancelled'|
-- 'suppressed'}.
local key = KEYS[1]
local f = redis.call('HMGET', key, 'status', 'ledger', 'leaseUntil', 'nextAt', 'submittedAt')
local status, ledger, lease_until, next_at, submitted = f[1], f[2], f[3], f[4], f[5]
if not status then return {'missing'} end
if TJ_FINAL[status] or ledger == 'sent' then
  return {'final', status}
end
local now = tonumber(ARGV[1])
if ledger == 'submitting' and lease_until and now < tonumber(lease_until) then
  return {'busy', lease_until}
end
if next_at and tonumber(next_at) > now + 1 then return {'early', next_at} end
local mode = 'send'
if ledger == 'submitting' or ledger == 'unknown' then mode = 'reconcile' end
if mode == 'send' then
  local gate = tj_gate(key, ARGV[5], status, ARGV[4])
  if gate then return {gate} end
end
tj_move(key, status, 'running')
local attempts
if mode == 'send' then
  attempts = redis.call('HINCRBY', key, 'attempts', 1)
  submitted = ARGV[1]
else
  attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
  submitted = submitted or ARGV[1]
end
local lease_end = now + tonumber(ARGV[2])
redis.call('HSET', key, 'ledger', 'submitting', 'lease', ARGV[3],
           'leaseUntil', tostring(lease_end), 'submittedAt', submitted,
           'updatedAt', ARGV[4])
redis.call('HDEL', key, 'nextAt')
-- Heartbeat recovery: once this process's heartbeat lapses, a reaper ends the lease at once.
if ARGV[6] ~= '' then
  redis.call('HSET', key, 'leaseHolder', ARGV[6])
  redis.call('SADD', KEYS[3], ARGV[5])
end
-- Watchdog: if this worker dies, the scheduler hands the job out again when the lease ends.
redis.call('ZADD', KEYS[2], lease_end, ARGV[5])
local d = redis.call('HMGET', key, 'kind', 'params', 'accountSid', 'cred', 'callbackUrl',
                     'campaignId', 'error', 'createdAt', 'trace', 'window')
return {mode, tostring(attempts), submitted, d[1] or '', d[2] or '{}', d[3] or '', d[4] or '',
        d[5] or '', d[6] or '', d[7] or '', d[8] or '', d[9] or '', d[10] or ''}
