-- index_jobs: enter single sends, just written by a pipelined HSET (twilio_jobs.store), in
-- their tenants' indexes (lua/lifecycle.lua), and count them in the stats hash (jobs per
-- state, as tj_move keeps it). One call per batch of the API's job writer.
-- include: lifecycle
-- ARGV[1] ttl   ARGV[2] created (unix seconds, the index score)
-- ARGV[3..] job id, owner, status (one of TJ_INITIAL), recipient digest ('' for none), ...
-- Returns how many jobs were indexed.
local ttl, score = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, #ARGV, 4 do
  if not TJ_INITIAL[ARGV[i + 2]] then
    error('twilio-jobs: a job cannot be created ' .. tostring(ARGV[i + 2]))
  end
  tj_index_new(ARGV[i + 1], ARGV[i], ARGV[i + 2], '', ARGV[i + 3], score, ttl)
  redis.call('HINCRBY', TJ_KEY_STATS, 'status:' .. ARGV[i + 2], 1)
end
return (#ARGV - 2) / 4
