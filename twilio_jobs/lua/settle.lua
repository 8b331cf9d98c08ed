-- settle: write an attempt's outcome, if the caller still holds the job's lease.
-- include: lifecycle prove
-- KEYS[1] job hash   KEYS[2] schedule   KEYS[3] the SID's owner key
-- ARGV[1] lease token   ARGV[2] fields (JSON object; `status` is moved through tj_move)
-- ARGV[3] fields to delete (JSON list)   ARGV[4] due ('' for none)   ARGV[5] job id
-- ARGV[6] Twilio SID ('' for none)   ARGV[7] ttl of the SID's owner key and of a proof
-- Returns 1, or 0 when the lease was lost (nothing written).
local key = KEYS[1]
if redis.call('HGET', key, 'lease') ~= ARGV[1] then return 0 end
local fields = cjson.decode(ARGV[2])
local new = fields.status
fields.status = nil
if new then tj_move(key, redis.call('HGET', key, 'status'), new) end
for k, v in pairs(fields) do redis.call('HSET', key, k, v) end
for _, k in ipairs(cjson.decode(ARGV[3])) do redis.call('HDEL', key, k) end
if new then tj_count_error(key, new) end
if new == 'succeeded' then tj_prove(key, ARGV[7]) end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
else
  redis.call('ZREM', KEYS[2], ARGV[5])
end
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[7]) end
return 1
