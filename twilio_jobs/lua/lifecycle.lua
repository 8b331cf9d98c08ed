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
--
-- It also keeps the job's tenant indexes (twilio_jobs.search): sorted sets of job ids scored
-- by creation time. `tj_move` takes the job out of its old status's index and puts it in the
-- new one's; `tj_index_error` enters a failed or suppressed job (and a delivery error code)
-- under its code. An index is trimmed by score to the records still alive and expires with
-- its newest record: a record created at c lives until c + ttl, so with the job's remaining
-- TTL t and its score s, every entry below s - t belongs to an expired record.

-- Add `id` (score `score`) to an index; trim what expired before `cutoff`; keep the key at
-- least `ttl` seconds (nil ttl: a record without expiry, nothing trimmed).
local function tj_index_add(key, score, id, ttl)
  redis.call('ZADD', key, score, id)
  if ttl and ttl > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. tostring(score - ttl))
    if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
  end
end

-- The job's tenant, its index score (creation time) and remaining TTL (nil without one).
local function tj_index_of(job_key)
  local owner = redis.call('HGET', job_key, 'owner') or ''
  local id = tj_job_id(job_key)
  local score = tonumber(redis.call('ZSCORE', tj_key_index_all(owner), id))
  if not score then score = tonumber(redis.call('TIME')[1]) end
  local ttl = tonumber(redis.call('TTL', job_key))
  if ttl < 0 then ttl = nil end
  return owner, id, score, ttl
end

local function tj_error_code(job_key)
  local raw = redis.call('HGET', job_key, 'error')
  if raw then
    local ok, err = pcall(cjson.decode, raw)
    if ok and type(err) == 'table' and type(err.code) == 'number' then
      return string.format('%d', err.code)
    end
  end
  return nil
end

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
  if now_final and not was then
    -- The campaign's last job to end takes it off the running set (`GET /metrics`).
    local final = redis.call('HINCRBY', counts, 'final', 1)
    local cid = redis.call('HGET', job_key, 'campaignId')
    local total = tonumber(redis.call('HGET', tj_key_campaign(cid), 'total') or '0')
    if final >= total then redis.call('SREM', TJ_KEY_CAMPAIGNS_RUNNING, cid) end
  end
  if was and not now_final then
    redis.call('HINCRBY', counts, 'final', -1)
    redis.call('SADD', TJ_KEY_CAMPAIGNS_RUNNING, redis.call('HGET', job_key, 'campaignId'))
  end
  if new == 'succeeded' then
    local sec = tonumber(redis.call('TIME')[1])
    local slot = tostring(sec % 60)
    if redis.call('HGET', counts, 's' .. slot) ~= tostring(sec) then
      redis.call('HSET', counts, 's' .. slot, sec, 'r' .. slot, 0)
    end
    redis.call('HINCRBY', counts, 'r' .. slot, 1)
  end
end

-- Enter a job under an error code in its tenant's index.
local function tj_index_error(job_key, code)
  local owner, id, score, ttl = tj_index_of(job_key)
  tj_index_add(tj_key_index_error(owner, code), score, id, ttl)
end

-- The error code of a job that ended failed or suppressed, counted and indexed once its
-- `error` is written.
local function tj_count_error(job_key, new)
  if new ~= 'failed' and new ~= 'suppressed' then return end
  local code = tj_error_code(job_key)
  if not code then return end
  tj_index_error(job_key, code)
  local counts = tj_counts_key(job_key)
  if counts then redis.call('HINCRBY', counts, 'error:' .. code, 1) end
end

-- Move the job between its tenant's status indexes; a failed job that runs again leaves the
-- index of the error code it had.
local function tj_index_move(job_key, old, new)
  local owner, id, score, ttl = tj_index_of(job_key)
  if old then redis.call('ZREM', tj_key_index_status(owner, old), id) end
  tj_index_add(tj_key_index_status(owner, new), score, id, ttl)
  if old == 'failed' then
    local code = tj_error_code(job_key)
    if code then redis.call('ZREM', tj_key_index_error(owner, code), id) end
    local delivered = redis.call('HGET', job_key, 'errorCode')
    if delivered and delivered ~= '' then
      redis.call('ZREM', tj_key_index_error(owner, delivered), id)
    end
  end
end

-- `tj_index_add` for a job just created: its TTL is the longest any entry has, so the key's
-- expiry is set without reading it first.
local function tj_index_add_new(key, score, id, ttl)
  redis.call('ZADD', key, score, id)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. tostring(score - ttl))
  redis.call('EXPIRE', key, ttl)
end

-- Enter a new job (already written, with its TTL) in its tenant's indexes: all, its status,
-- its campaign, its recipient (`digest`, '' for none). `score` is its creation time.
local function tj_index_new(owner, id, status, campaign, digest, score, ttl)
  tj_index_add_new(tj_key_index_all(owner), score, id, ttl)
  tj_index_add_new(tj_key_index_status(owner, status), score, id, ttl)
  if campaign and campaign ~= '' then
    tj_index_add_new(tj_key_index_campaign(owner, campaign), score, id, ttl)
  end
  if digest and digest ~= '' then
    tj_index_add_new(tj_key_index_to(owner, digest), score, id, ttl)
  end
end

-- Take a job entered by `tj_index_new` out of its tenant's indexes again.
local function tj_index_drop(owner, id, status, campaign, digest)
  redis.call('ZREM', tj_key_index_all(owner), id)
  redis.call('ZREM', tj_key_index_status(owner, status), id)
  if campaign and campaign ~= '' then
    redis.call('ZREM', tj_key_index_campaign(owner, campaign), id)
  end
  if digest and digest ~= '' then redis.call('ZREM', tj_key_index_to(owner, digest), id) end
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
  tj_index_move(job_key, old, new)
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
