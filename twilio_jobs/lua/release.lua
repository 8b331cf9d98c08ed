-- release: after the scheduler published due ids, drop them from the schedule (unless they
-- were rescheduled meanwhile) and show scheduled jobs as queued.
-- include: lifecycle
-- KEYS[1] schedule (sorted set)
-- ARGV[1] now (unix)   ARGV[2..] the published ids
-- Returns how many were released.
local n = 0
for i, id in ipairs(ARGV) do
  if i > 1 then
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= tonumber(ARGV[1]) then
      redis.call('ZREM', KEYS[1], id)
      local job = tj_key_job(id)
      if redis.call('HGET', job, 'status') == 'scheduled' then
        tj_move(job, 'scheduled', 'queued')
      end
      n = n + 1
    end
  end
end
return n
