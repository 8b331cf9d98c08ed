-- enqueue_jobs: write a batch of single sends whole, for the API's job writer
-- (twilio_jobs.writer), in one call instead of a MULTI/EXEC of three commands a job and two
-- more a batch: each job's record (HSET, EXPIRE), its watchdog entry in the schedule (see
-- Client.submit), its index entries and stats count (as lua/index_jobs.lua), then the batch's
-- task messages in one LPUSH (none when the batch waits for replicas first).
-- include: lifecycle
-- KEYS[1] the schedule   KEYS[2] the send queue
-- ARGV[1] ttl   ARGV[2] created (unix seconds, the index score)   ARGV[3] the watchdog's score
-- ARGV[4..] per job: job id, recipient digest ('' for none), task message ('' for none),
--           n, then the record's n field/value pairs (`status` one of TJ_INITIAL, `owner`)
-- Returns how many jobs were written.
local ttl, score, watchdog = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local messages = {}
local written = 0
local i = 4
while i <= #ARGV do
  local id, digest, message = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local first, last = i + 4, i + 3 + 2 * tonumber(ARGV[i + 3])
  local owner, status = '', nil
  for j = first, last, 2 do
    if ARGV[j] == 'status' then status = ARGV[j + 1]
    elseif ARGV[j] == 'owner' then owner = ARGV[j + 1]
    end
  end
  if not TJ_INITIAL[status] then
    error('twilio-jobs: a job cannot be created ' .. tostring(status))
  end
  local key = tj_key_job(id)
  redis.call('HSET', key, unpack(ARGV, first, last))
  redis.call('EXPIRE', key, ttl)
  redis.call('ZADD', KEYS[1], watchdog, id)
  tj_index_new(owner, id, status, '', digest, score, ttl)
  redis.call('HINCRBY', TJ_KEY_STATS, 'status:' .. status, 1)
  if message ~= '' then messages[#messages + 1] = message end
  written = written + 1
  i = last + 1
end
if #messages > 0 then redis.call('LPUSH', KEYS[2], unpack(messages)) end
return written
