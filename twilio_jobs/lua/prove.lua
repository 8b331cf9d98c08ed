-- prove: a job Twilio accepted proves its account to the job's tenant, when the tenant supplied
-- the token itself (`ownCred`); the server's default credentials prove nothing
-- (twilio_jobs.tenancy). Functions only, for the scripts that include it.
-- include: lifecycle

-- tj_prove(job key, ttl): add the job's account to its tenant's proven accounts.
local function tj_prove(key, ttl)
  local p = redis.call('HMGET', key, 'owner', 'ownCred', 'accountSid')
  if p[1] and p[1] ~= '' and p[2] == '1' and p[3] and p[3] ~= '' then
    local proven = tj_key_proven(p[1])
    redis.call('ZADD', proven, redis.call('TIME')[1], p[3])
    redis.call('EXPIRE', proven, ttl)
  end
end
