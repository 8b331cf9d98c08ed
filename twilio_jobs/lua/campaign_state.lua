-- campaign_state: pause, resume or cancel a campaign (its `state`, not its jobs').
-- KEYS[1] campaign hash   KEYS[2] its parked set
-- ARGV[1] wanted state: active | paused | cancelled
-- Returns {'ok', parked ids...} (the ids only on resume), {'same'}, {'missing'}, or {state}
-- when the current state forbids it.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing'} end
local want = ARGV[1]
if state == want then return {'same'} end
if state == 'cancelled' then return {'cancelled'} end
if want == 'paused' and state ~= 'active' then return {state} end
if want == 'active' and state ~= 'paused' then return {state} end
redis.call('HSET', KEYS[1], 'state', want)
if want == 'paused' then return {'ok'} end
local parked = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
table.insert(parked, 1, 'ok')
return parked
