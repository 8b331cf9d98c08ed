-- write_jobs: create a chunk of a campaign's job records and enter them in their tenant's
-- indexes (lua/lifecycle.lua). The fields every job shares travel once per chunk (redis-py
-- spends ~90 us packing one HSET of a dozen fields); each job adds only its id, its Twilio
-- parameters and its recipient's digest.
-- include: lifecycle
-- ARGV[1] shared fields (JSON array k1, v1, ...; `status` one of TJ_INITIAL, with `owner` and
-- `campaignId`)   ARGV[2] ttl   ARGV[3] created (unix seconds, the index score)
-- ARGV[4..] job id, params (JSON), recipient digest ('' for none), job id, ...
-- Returns how many records were written.
local shared = cjson.decode(ARGV[1])
local status, owner, campaign = nil, '', ''
for i = 1, #shared, 2 do
  if shared[i] == 'status' then
    status = shared[i + 1]
    if not TJ_INITIAL[status] then
      error('twilio-jobs: a job cannot be created ' .. tostring(status))
    end
  elseif shared[i] == 'owner' then owner = shared[i + 1]
  elseif shared[i] == 'campaignId' then campaign = shared[i + 1]
  end
end
local ttl, score = tonumber(ARGV[2]), tonumber(ARGV[3])
local members = {}
for i = 4, #ARGV, 3 do
  local key = tj_key_job(ARGV[i])
  redis.call('HSET', key, 'params', ARGV[i + 1], unpack(shared))
  redis.call('EXPIRE', key, ttl)
  members[#members + 1] = score
  members[#members + 1] = ARGV[i]
  if ARGV[i + 2] ~= '' then
    tj_index_add_new(tj_key_index_to(owner, ARGV[i + 2]), score, ARGV[i], ttl)
  end
end
if #members > 0 then
  -- One ZADD per index for the chunk, then one trim and expiry each.
  local shared_keys = {tj_key_index_all(owner), tj_key_index_status(owner, status)}
  if campaign ~= '' then shared_keys[3] = tj_key_index_campaign(owner, campaign) end
  for _, ix in ipairs(shared_keys) do
    redis.call('ZADD', ix, unpack(members))
    tj_index_add_new(ix, score, ARGV[4], ttl)
  end
end
local n = (#ARGV - 3) / 3
if status then redis.call('HINCRBY', TJ_KEY_STATS, 'status:' .. status, n) end
return n
