-- reap_claims: a dead worker process's send-ledger leases end now; the caller hands their jobs
-- out again (the next claim reconciles before anything is sent again). Their watchdog entries
-- stay in the schedule at the old lease end, should that hand-out fail. The in-flight slots the
-- process held (ids `<worker id>:...`, see twilio_jobs.pacing.pacer) are freed for the others.
-- include: lifecycle
-- KEYS[1] the dead process's claims set
-- ARGV[1] the dead process's worker id   ARGV[2] now (unix)
-- Returns the ids of the jobs whose lease ended.
local ended = {}
local accounts = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local job = tj_key_job(id)
  local f = redis.call('HMGET', job, 'ledger', 'leaseHolder', 'accountSid')
  if f[3] then accounts[f[3]] = true end
  if f[1] == 'submitting' and f[2] == ARGV[1] then
    redis.call('HSET', job, 'leaseUntil', ARGV[2])
    ended[#ended + 1] = id
  end
end
local prefix = ARGV[1] .. ':'
for account in pairs(accounts) do
  local slots = tj_key_in_flight(account)
  for _, slot in ipairs(redis.call('ZRANGE', slots, 0, -1)) do
    if string.sub(slot, 1, #prefix) == prefix then redis.call('ZREM', slots, slot) end
  end
end
redis.call('DEL', KEYS[1])
return ended
