-- take: a worker's broker channel takes the next task message and records it as unacked in
-- one step (worker/broker.py), so that a worker killed right after the take cannot lose it:
-- it is in kombu's `unacked` hash and in the channel's tags set, to be restored when the
-- channel stops beating (twilio_jobs.heartbeat).
-- KEYS[1] unacked (hash)   KEYS[2] unacked_index (sorted set)   KEYS[3] the channel's tags set
-- KEYS[4] workers (sorted set)   KEYS[5..] the queues' lists, in the order to try
-- ARGV[1] now (unix)   ARGV[2] the channel's worker id
-- Returns {list, message} or nil when every queue is empty.
-- A channel's first take puts its id among the workers, to be reaped should it never beat.
redis.call('ZADD', KEYS[4], 'NX', ARGV[1], ARGV[2])
for i = 5, #KEYS do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, message = pcall(cjson.decode, item)
    local props = ok and type(message) == 'table' and message['properties']
    local tag = props and props['delivery_tag']
    local info = props and props['delivery_info']
    if type(tag) == 'string' and type(info) == 'table' then
      -- kombu's own record: [message, exchange, routing key]; the message as it was queued.
      local record = '[' .. item .. ',' .. cjson.encode(info['exchange'] or '') .. ','
                     .. cjson.encode(info['routing_key'] or '') .. ']'
      redis.call('HSET', KEYS[1], tag, record)
      redis.call('ZADD', KEYS[2], ARGV[1], tag)
      redis.call('SADD', KEYS[3], tag)
    end
    return {KEYS[i], item}
  end
end
return false
