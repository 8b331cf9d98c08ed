-- campaign_gate: a paused or cancelled campaign starts no send (twilio_jobs.pacing).
--
-- tj_campaign_closed(campaign_key): nil while the campaign is active (or there is none), else
-- its state.

local function tj_campaign_closed(campaign_key)
  local state = redis.call('HGET', campaign_key, 'state')
  if state and state ~= 'active' then return state end
  return nil
end
