-- restore: put a dead broker channel's unacked task messages back at the consuming end of
-- their queues and forget them (worker/broker.py `tags_restorer`). kombu's `restore_by_tag`
-- does the same one tag at a time under WATCH of the `unacked` hash, which every live worker's
-- acks change: under load it retries for seconds. Messages with a priority are left to it.
-- KEYS[1] unacked (hash)   KEYS[2] unacked_index (sorted set)   KEYS[3] the channel's tags set
-- ARGV[1] kombu's binding key prefix ('_kombu.binding.')   ARGV[2] kombu's separator
-- Returns {restored count, tags left to kombu...}.
local sep = ARGV[2]
local function queues_for(exchange, rk)
  local found = {}
  if exchange and exchange ~= '' then
    for _, b in ipairs(redis.call('SMEMBERS', ARGV[1] .. exchange)) do
      local i = string.find(b, sep, 1, true)
      local j = i and string.find(b, sep, i + #sep, true)
      if j and string.sub(b, 1, i - 1) == rk then
        found[#found + 1] = string.sub(b, j + #sep)
      end
    end
  end
  if #found == 0 then found[1] = rk end
  return found
end
local restored, left = 0, {}
for _, tag in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local record = redis.call('HGET', KEYS[1], tag)
  local handled = true
  if record then
    local ok, r = pcall(cjson.decode, record)
    local message = ok and type(r) == 'table' and r[1]
    local props = type(message) == 'table' and message['properties']
    local priority = type(props) == 'table' and props['priority']
    if type(props) ~= 'table' or (type(priority) == 'number' and priority ~= 0)
       or type(r[3]) ~= 'string' then
      handled = false
      left[#left + 1] = tag
    else
      if type(message['headers']) == 'table' then message['headers']['redelivered'] = true end
      if type(props['delivery_info']) == 'table' then
        props['delivery_info']['redelivered'] = true
      end
      local payload = cjson.encode(message)
      for _, queue in ipairs(queues_for(r[2], r[3])) do
        redis.call('RPUSH', queue, payload)
      end
      restored = restored + 1
    end
  end
  if handled then
    redis.call('HDEL', KEYS[1], tag)
    redis.call('ZREM', KEYS[2], tag)
  end
end
redis.call('DEL', KEYS[3])
return {restored, unpack(left)}
