-- backlog: a place in line on a lane for a job that cannot start soon.
-- include: pacing
-- KEYS[1] backlog of the lane   KEYS[2] its GCRA TAT
-- ARGV[1] now ('' for Redis's clock)   ARGV[2] seconds between sends   ARGV[3] lead
-- Returns when the job should come back: one interval after the last place handed out.
local now = tj_now(ARGV[1])
local interval = tonumber(ARGV[2])
local last = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'),
                      tonumber(redis.call('GET', KEYS[2]) or '0'))
local place = last + interval
redis.call('SET', KEYS[1], tostring(place), 'PX', math.ceil((place - now) * 1000) + 1000)
return tostring(math.max(now, place - tonumber(ARGV[3])))
