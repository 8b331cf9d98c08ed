-- lifecycle: the one status change of a job, and the counters and webhook events kept with it.
-- include: outbox
-- Included by every script that changes a job's status. TJ_MOVES, TJ_FINAL and the tj_key_*
-- functions are generated from twilio_jobs.lifecycle and twilio_jobs.keys.
--
-- tj_move(job_key, old, new): move the job from `old` (its status as the script read it) to
-- `new`. A move the transition table does not allow raises an error; callers call it before
-- any other write, so a refused move leaves the job as it was. A move to a final state queues
-- the `job.<status>` webhook event, written (lua/outbox.lua) once the script's writes are
-- done, in the same atomic step. Keeps the campaign counters:
-- one field per status, `final`, `error:<code>` of jobs that ended failed or suppressed, and a
-- 60-slot ring of successful sends per second (`s<slot>` = the second, `r<slot>` = the count).
-- tj_delivery(job_key, old, new, code) does the same for Twilio's delivery statuses (called by
-- delivery_status.lua for every accepted status callback), and counts `deliveryError:<code>`.
-- Every move is also counted in the stats hash (TJ_KEY_STATS) that `GET /metrics` reads:
-- `status:<s>` jobs in each state now, `ended:<s>` moves into each final state ever.

local function tj_counts_key(job_key)
  local cid = redis.call('HGET', job_key, 'campaignId')
  if not cid or cid == '' then return nil end
  return tj_key_campaign_counts(cid)
end

local function tj_count(job_key, old, new)
  local counts = tj_counts_key(job_key)
  if not counts then return end
  if old then redis.call('HINCRBY', counts, old, -1) end
  redis.call('HINCRBY', counts, new, 1)
  local was, now_final = TJ_FINAL[old or ''] or false, TJ_FINAL[new] or false
  if now_final and not was then redis.call('HINCRBY', counts, 'final', 1) end
  if was and not now_final then redis.call('HINCRBY', counts, 'final', -1) end
  if new == 'succeeded' then
    local sec = tonumber(redis.call('TIME')[1])
    local slot = tostring(sec % 60)
    if redis.call('HGET', counts, 's' .. slot) ~= tostring(sec) then
      redis.call('HSET', counts, 's' .. slot, sec, 'r' .. slot, 0)
    end
    redis.call('HINCRBY', counts, 'r' .. slot, 1)
  end
end

-- The error code of a job that ended failed or suppressed, counted once its `error` is written.
local function tj_count_error(job_key, new)
  if new ~= 'failed' and new ~= 'suppressed' then return end
  local counts = tj_counts_key(job_key)
  if not counts then return end
  local raw = redis.call('HGET', job_key, 'error')
  if raw then
    local ok, err = pcall(cjson.decode, raw)
    if ok and type(err) == 'table' and type(err.code) == 'number' then
      redis.call('HINCRBY', counts, 'error:' .. string.format('%d', err.code), 1)
    end
  end
end

local function tj_move(job_key, old, new)
  if old == new then return end
  local allowed = TJ_MOVES[old or '']
  if not allowed or not allowed[new] then
    error('twilio-jobs: a job cannot move from ' .. tostring(old) .. ' to ' .. tostring(new))
  end
  redis.call('HSET', job_key, 'status', new)
  tj_count(job_key, old, new)
  if old then redis.call('HINCRBY', TJ_KEY_STATS, 'status:' .. old, -1) end
  redis.call('HINCRBY', TJ_KEY_STATS, 'status:' .. new, 1)
  if TJ_FINAL[new] then redis.call('HINCRBY', TJ_KEY_STATS, 'ended:' .. new, 1) end
  if TJ_FINAL[new] then tj_event(job_key, 'job.' .. new) end
end

local function tj_delivery(job_key, old, new, code)
  if old == new then return end
  local counts = tj_counts_key(job_key)
  if not counts then return end
  if old and old ~= '' then redis.call('HINCRBY', counts, 'delivery:' .. old, -1) end
  redis.call('HINCRBY', counts, 'delivery:' .. new, 1)
  if code and code ~= '' then redis.call('HINCRBY', counts, 'deliveryError:' .. code, 1) end
end
