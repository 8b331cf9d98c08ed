-- rate: sends per second on a lane, GCRA over one theoretical arrival time (TAT) per lane
-- (twilio_jobs.pacing.rate, twilio_jobs.pacing.calls).
--
-- tj_rate_fit(tat_key, now, n, interval, horizon): how many of `n` sends fit before
-- `now + horizon` and when the first starts (unix), recording the lane's new TAT; or 0 and the
-- seconds to wait when none fits. `interval` 0: unlimited.

local function tj_rate_fit(tat_key, now, n, interval, horizon)
  if interval <= 0 then return n, now end
  local first = now
  local tat = tonumber(redis.call('GET', tat_key) or '0')
  if tat > now then first = tat end
  local fit = math.floor((now + horizon - first) / interval) + 1
  if fit <= 0 then return 0, first - horizon - now end
  n = math.min(n, fit)
  local next_tat = first + n * interval
  redis.call('SET', tat_key, tostring(next_tat), 'PX', math.ceil((next_tat - now) * 1000) + 1000)
  return n, first
end
