-- unacked: a task message taken from a queue, recorded as kombu records an unacked delivery
-- (its `unacked` hash and `unacked_index` sorted set) and in the taking channel's tags set,
-- so that a worker killed right after the take cannot lose it (twilio_jobs.heartbeat).
-- Included by lua/take.lua and lua/take_many.lua, whose first keys are these:
-- KEYS[1] unacked (hash)   KEYS[2] unacked_index (sorted set)   KEYS[3] the channel's tags set
local function tj_record_unacked(item, now)
  local ok, message = pcall(cjson.decode, item)
  local props = ok and type(message) == 'table' and message['properties']
  local tag = props and props['delivery_tag']
  local info = props and props['delivery_info']
  if type(tag) == 'string' and type(info) == 'table' then
    -- kombu's own record: [message, exchange, routing key]; the message as it was queued.
    local record = '[' .. item .. ',' .. cjson.encode(info['exchange'] or '') .. ','
                   .. cjson.encode(info['routing_key'] or '') .. ']'
    redis.call('HSET', KEYS[1], tag, record)
    redis.call('ZADD', KEYS[2], now, tag)
    redis.call('SADD', KEYS[3], tag)
  end
end
