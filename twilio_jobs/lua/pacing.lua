-- pacing: shared by the pacing scripts: the time (the caller's, or Redis's clock when ARGV
-- gives ''), and an account's AIMD limit grown back additively since it was last cut.

local function tj_now(given)
  local now = tonumber(given)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function tj_recovered(limit, at, cap, per_second, now)
  return math.min(cap, tonumber(limit) + (now - tonumber(at)) * per_second)
end
