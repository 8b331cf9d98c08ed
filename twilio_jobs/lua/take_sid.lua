-- take_sid: a Twilio SID may be adopted by one job only.
-- KEYS[1] the SID's owner key   ARGV[1] job id   ARGV[2] ttl
-- Returns 1 when the SID is this job's now, 0 when another job has it.
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
