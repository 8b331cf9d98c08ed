-- webhook_claim: lease one delivery to the caller for one attempt.
-- KEYS[1] delivery hash   KEYS[2] webhook schedule
-- ARGV[1] now   ARGV[2] lease until   ARGV[3] lease token   ARGV[4] delivery id
-- Returns {'ok', attempts, jobId, event, url, body, record} or {'missing'|'done'|'busy'|'early'}:
-- `body` the bytes to send, or '' and `record` the job's fields to render them from.
local f = redis.call('HMGET', KEYS[1], 'status', 'leaseUntil', 'nextAt')
local status = f[1]
if not status then return {'missing'} end
if status == 'delivered' or status == 'failed' then return {'done'} end
local now = tonumber(ARGV[1])
if status == 'sending' and now < tonumber(f[2]) then return {'busy'} end
if status == 'retrying' and f[3] and tonumber(f[3]) > now + 1 then return {'early'} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'status', 'sending', 'lease', ARGV[3], 'leaseUntil', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
local d = redis.call('HMGET', KEYS[1], 'jobId', 'event', 'url', 'body', 'record')
return {'ok', tostring(attempts), d[1] or '', d[2] or '', d[3] or '', d[4] or '', d[5] or '{}'}
