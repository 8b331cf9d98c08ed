-- gates: the checks a job passes before it may be sent (twilio_jobs.gates).
-- include: lifecycle
--
-- tj_end(job_key, old, new, stamp, err, result): end a job unsent (cancelled, suppressed).
-- tj_gate(job_key, job_id, old, stamp): nil when the job may go on, else what became of it:
--   paused      the job id is parked in the campaign's set; `resume` dispatches it again
--   cancelled   the job ended `cancelled` (its campaign was cancelled)
--   suppressed  the job ended `suppressed`: its recipient is suppressed for its from number,
--               its Messaging Service or the whole account (`*`)

local function tj_end(key, old, new, stamp, err, result)
  tj_move(key, old, new)
  redis.call('HSET', key, 'updatedAt', stamp, 'error', err, 'result', result)
  redis.call('HDEL', key, 'cred', 'ledger', 'lease', 'leaseUntil', 'nextAt')
  tj_count_error(key, new)
end

local function tj_gate(key, job_id, old, stamp)
  local f = redis.call('HMGET', key, 'campaignId', 'kind', 'params', 'accountSid')
  if f[1] and f[1] ~= '' then
    local state = redis.call('HGET', tj_key_campaign(f[1]), 'state')
    if state == 'paused' then
      redis.call('SADD', tj_key_campaign_parked(f[1]), job_id)
      return 'paused'
    elseif state == 'cancelled' then
      tj_end(key, old, 'cancelled', stamp, TJ_CANCELLED.error, TJ_CANCELLED.result)
      return 'cancelled'
    end
  end
  if f[2] ~= 'makeCall' and f[3] and f[4] then
    local ok, p = pcall(cjson.decode, f[3])
    if ok and type(p) == 'table' and type(p.To) == 'string' then
      -- suppressed for its from number, its Messaging Service, or the whole account ('*')
      local fields = {'* ' .. p.To}
      if type(p.From) == 'string' then fields[#fields + 1] = p.From .. ' ' .. p.To end
      if type(p.MessagingServiceSid) == 'string' then
        fields[#fields + 1] = p.MessagingServiceSid .. ' ' .. p.To
      end
      local found = redis.call('HMGET', tj_key_suppressed(f[4]), unpack(fields))
      for i = 1, #fields do
        if found[i] then
          tj_end(key, old, 'suppressed', stamp, TJ_SUPPRESSED.error, TJ_SUPPRESSED.result)
          return 'suppressed'
        end
      end
    end
  end
  return nil
end
