-- unclaim: hand a claimed job back before anything was sent (pacing said wait, or its
-- campaign was paused meanwhile).
-- include: lifecycle gates
-- KEYS[1] job hash   KEYS[2] schedule
-- ARGV[1] lease token   ARGV[2] now (ISO)   ARGV[3] job id   ARGV[4] due (unix)
-- ARGV[5] the status it waits in: queued (default; pacing) or scheduled (outside its send
-- window, twilio_jobs.windows)
-- Returns 0 if the lease was lost, else the gate's outcome (paused | cancelled | suppressed)
-- or the status it waits in.
local key = KEYS[1]
if redis.call('HGET', key, 'lease') ~= ARGV[1] then return 0 end
redis.call('HINCRBY', key, 'attempts', -1)
redis.call('HDEL', key, 'ledger', 'lease', 'leaseUntil')
local gate = tj_gate(key, ARGV[3], 'running', ARGV[2])
if gate == 'cancelled' or gate == 'suppressed' then return gate end
local target = ARGV[5]
if target ~= 'scheduled' then target = 'queued' end
tj_move(key, 'running', target)
redis.call('HSET', key, 'updatedAt', ARGV[2])
if gate == 'paused' then return gate end
redis.call('HSET', key, 'nextAt', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return target
