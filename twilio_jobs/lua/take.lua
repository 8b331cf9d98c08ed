-- take: a worker's broker channel takes the next task message and records it as unacked in
-- one step (worker/broker.py), so that a worker killed right after the take cannot lose it:
-- it is in kombu's `unacked` hash and in the channel's tags set, to be restored when the
-- channel stops beating (twilio_jobs.heartbeat).
-- KEYS[1] unacked (hash)   KEYS[2] unacked_index (sorted set)   KEYS[3] the channel's tags set
-- KEYS[4] workers (sorted set)   KEYS[5..] the queues' lists, in the order to try
-- ARGV[1] now (unix)   ARGV[2] the channel's worker id
-- Returns {list, message} or nil when every queue is empty.
-- include: unacked
-- A channel's first take puts its id among the workers, to be reaped should it never beat.
redis.call('ZADD', KEYS[4], 'NX', ARGV[1], ARGV[2])
for i = 5, #KEYS do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    tj_record_unacked(item, ARGV[1])
    return {KEYS[i], item}
  end
end
return false
