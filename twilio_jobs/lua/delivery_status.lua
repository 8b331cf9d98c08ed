-- delivery_status: a Twilio status callback's delivery status, never moving backwards, and
-- its `delivery.<status>` webhook event in the same step.
-- The campaign's delivery counters move with it (tj_delivery), with the error code of a
-- message or call that failed or was undelivered.
-- include: lifecycle
-- KEYS[1] job hash
-- ARGV[1] status   ARGV[2] its rank   ARGV[3] error code ('' for none)   ARGV[4] now (ISO)
-- ARGV[5] the callback's SID ('' for none)
-- Returns 'ok', 'missing', 'other' (another message or call) or 'stale'.
local f = redis.call('HMGET', KEYS[1], 'status', 'deliveryRank', 'twilioSid', 'deliveryStatus')
if not f[1] then return 'missing' end
if ARGV[5] ~= '' and f[3] and f[3] ~= '' and f[3] ~= ARGV[5] then return 'other' end
if f[2] and tonumber(f[2]) >= tonumber(ARGV[2]) then return 'stale' end
redis.call('HSET', KEYS[1], 'deliveryStatus', ARGV[1], 'deliveryRank', ARGV[2],
           'updatedAt', ARGV[4])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'errorCode', ARGV[3])
  tj_index_error(KEYS[1], ARGV[3])
end
tj_delivery(KEYS[1], f[4], ARGV[1], ARGV[3])
tj_emit(KEYS[1], 'delivery.' .. ARGV[1])
return 'ok'
