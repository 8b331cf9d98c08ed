-- outbox: the transactional outbox of result webhooks (twilio_jobs.outbox). A script that ends
-- a job (or records a delivery status) writes the webhook delivery in the same atomic step as
-- the job, so no crash between the two can lose the event. The webhook scheduler (the relay)
-- publishes it from the webhook schedule; the `twilio_jobs.webhook` task delivers it.
-- TJ_RECORD_FIELDS, TJ_WEBHOOK_MIN_TTL_MS, tj_key_webhook and tj_job_id are generated from
-- twilio_jobs.schemas and twilio_jobs.keys.
--
-- tj_emit(job_key, event): a pending delivery of the job's record, as it is now, to its
--   `callbackUrl`; returns its id, or nil when the job is missing or has no URL.
-- tj_emit_body(id, job_id, owner, event, url, body, ttl_ms): a pending delivery of a body
--   rendered by the caller, of no job (an inbound message).
-- tj_event(job_key, event): tj_emit once the script's own writes are done (tj_move queues
--   `job.<final status>` this way; the script composer runs tj_flush after the script).

local TJ_EVENTS = {}

local function tj_emit(job_key, event)
  local f = redis.call('HMGET', job_key, 'status', 'callbackUrl', 'owner')
  if not f[1] or not f[2] or f[2] == '' then return nil end
  local job_id = tj_job_id(job_key)
  local id = job_id .. '-e' .. redis.call('HINCRBY', job_key, 'whSeq', 1)
  local values = redis.call('HMGET', job_key, unpack(TJ_RECORD_FIELDS))
  local record = {}
  for i, name in ipairs(TJ_RECORD_FIELDS) do
    if values[i] then record[name] = values[i] end
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local key = tj_key_webhook(id)
  redis.call('HSET', key, 'jobId', job_id, 'owner', f[3] or '', 'event', event, 'url', f[2],
             'record', cjson.encode(record), 'status', 'pending', 'attempts', 0,
             'createdAt', t[1])
  local ttl = redis.call('PTTL', job_key)
  if ttl < TJ_WEBHOOK_MIN_TTL_MS then ttl = TJ_WEBHOOK_MIN_TTL_MS end
  redis.call('PEXPIRE', key, ttl)
  redis.call('ZADD', tj_key_webhook_schedule(), now, id)
  local state = '{"id":' .. cjson.encode(id) .. ',"event":' .. cjson.encode(event)
    .. ',"status":"pending","attempts":0,"lastError":null,"lastAttemptAt":null}'
  redis.call('HSET', job_key, 'whLatest', id, 'webhook', state)
  return id
end

local function tj_emit_body(id, job_id, owner, event, url, body, ttl_ms)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local key = tj_key_webhook(id)
  redis.call('HSET', key, 'jobId', job_id, 'owner', owner, 'event', event, 'url', url,
             'body', body, 'status', 'pending', 'attempts', 0, 'createdAt', t[1])
  redis.call('PEXPIRE', key, ttl_ms)
  redis.call('ZADD', tj_key_webhook_schedule(), now, id)
  return id
end

local function tj_event(job_key, event)
  TJ_EVENTS[#TJ_EVENTS + 1] = {job_key, event}
end

local function tj_flush()
  for _, e in ipairs(TJ_EVENTS) do tj_emit(e[1], e[2]) end
  TJ_EVENTS = {}
end
