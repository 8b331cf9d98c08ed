-- webhook_enqueue: record a result-webhook delivery of a job's current record (tj_emit).
-- include: outbox
-- KEYS[1] job hash
-- ARGV[1] event
-- Returns the delivery id, or nil when the job no longer exists or has no callback URL.
return tj_emit(KEYS[1], ARGV[1])
