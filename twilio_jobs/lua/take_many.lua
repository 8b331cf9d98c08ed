-- take_many: the bulk consumer (worker/consumer.py) takes up to ARGV[3] task messages at once,
-- each recorded as unacked in the same step as lua/take.lua records one.
-- KEYS[1] unacked (hash)   KEYS[2] unacked_index (sorted set)   KEYS[3] the consumer's tags set
-- KEYS[4] workers (sorted set)   KEYS[5..] the queues' lists, in the order to try
-- ARGV[1] now (unix)   ARGV[2] the consumer's worker id   ARGV[3] how many at most
-- Returns the messages, oldest first (an empty list when every queue is empty).
-- include: unacked
redis.call('ZADD', KEYS[4], 'NX', ARGV[1], ARGV[2])
local taken, want = {}, tonumber(ARGV[3])
for i = 5, #KEYS do
  if #taken >= want then break end
  local items = redis.call('RPOP', KEYS[i], want - #taken)
  if items then
    for _, item in ipairs(items) do
      tj_record_unacked(item, ARGV[1])
      taken[#taken + 1] = item
    end
  end
end
return taken
