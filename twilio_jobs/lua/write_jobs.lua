-- write_jobs: create a chunk of a campaign's job records. The fields every job shares travel
-- once per chunk (redis-py spends ~90 us packing one HSET of a dozen fields); each job adds
-- only its id and Twilio parameters.
-- include: lifecycle
-- ARGV[1] shared fields (JSON array k1, v1, ...; `status` one of TJ_INITIAL)   ARGV[2] ttl
-- ARGV[3..] job id, params (JSON), job id, params, ...
-- Returns how many records were written.
local shared = cjson.decode(ARGV[1])
local status
for i = 1, #shared, 2 do
  if shared[i] == 'status' then
    status = shared[i + 1]
    if not TJ_INITIAL[status] then
      error('twilio-jobs: a job cannot be created ' .. tostring(status))
    end
  end
end
for i = 3, #ARGV, 2 do
  local key = tj_key_job(ARGV[i])
  redis.call('HSET', key, 'params', ARGV[i + 1], unpack(shared))
  redis.call('EXPIRE', key, ARGV[2])
end
local n = (#ARGV - 2) / 2
if status then redis.call('HINCRBY', TJ_KEY_STATS, 'status:' .. status, n) end
return n
