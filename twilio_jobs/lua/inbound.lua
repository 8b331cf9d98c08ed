-- inbound: apply one inbound message (twilio_jobs.inbound) in one step: its keyword's change to
-- the suppression list, its count, and its `inbound.message` webhook delivery (the outbox's
-- relay publishes it like a job's). A message Twilio posts again changes nothing.
-- include: outbox
-- KEYS[1] suppression hash   KEYS[2] seen marker   KEYS[3] counts hash
-- ARGV[1] keyword class (stop | start | help | other)   ARGV[2] field `<scope> <recipient>`
-- ARGV[3] the suppression entry (JSON)   ARGV[4] seen TTL (s)   ARGV[5] delivery id
-- ARGV[6] pseudo job id (the MessageSid)   ARGV[7] URL ('' for no event)   ARGV[8] body
-- ARGV[9] delivery TTL (ms)
-- Returns 'duplicate', or the keyword class.
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) == false then return 'duplicate' end
if ARGV[1] == 'stop' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
elseif ARGV[1] == 'start' then
  redis.call('HDEL', KEYS[1], ARGV[2])
end
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
if ARGV[7] ~= '' then
  tj_emit_body(ARGV[5], ARGV[6], '', 'inbound.message', ARGV[7], ARGV[8], tonumber(ARGV[9]))
end
return ARGV[1]
