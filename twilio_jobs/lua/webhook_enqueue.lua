-- webhook_enqueue: record a result-webhook delivery of a job (twilio_jobs.outbox).
-- KEYS[1] job hash   KEYS[2] delivery hash   KEYS[3] webhook schedule
-- ARGV[1] delivery id   ARGV[2] due (unix)   ARGV[3] ttl   ARGV[4] job's webhook state (JSON)
-- ARGV[5..] the delivery's fields, name, value, ...
-- Returns 1, or 0 when the job no longer exists.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], 'whLatest', ARGV[1], 'webhook', ARGV[4])
return 1
