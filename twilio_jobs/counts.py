"""Campaign counters, kept in Redis by every Lua script that changes a job's status.

A campaign's dashboard must not read 100,000 job hashes, so each script that moves a job from
one status to another (the ledger's claim and settle, the scheduler's release, cancel, retry,
the pacing gate) starts with `LUA` and calls `tj_moved(job_key, old, new)`. It is a no-op for
jobs without a `campaignId`. `tj_delivery(job_key, old, new)` does the same for Twilio's
delivery statuses (status callbacks).

Counters hash (`keys.campaign_counts`): one field per job status, `delivery:<status>`,
`error:<code>` for jobs that ended failed or suppressed, `final` (jobs in a final state), and a
60-slot ring of successful sends per second (`s<slot>` = the second, `r<slot>` = the count).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from twilio_jobs.schemas import JobStatus

LUA = """
local function tj_is_final(s)
  return s == 'succeeded' or s == 'failed' or s == 'cancelled' or s == 'suppressed'
end
local function tj_counts_key(job_key)
  local cid = redis.call('HGET', job_key, 'campaignId')
  if not cid or cid == '' then return nil end
  return 'tj:campaign:' .. cid .. ':counts'
end
local function tj_moved(job_key, old, new)
  if old == new then return end
  local counts = tj_counts_key(job_key)
  if not counts then return end
  if old then redis.call('HINCRBY', counts, old, -1) end
  redis.call('HINCRBY', counts, new, 1)
  local was, now_final = tj_is_final(old), tj_is_final(new)
  if now_final and not was then redis.call('HINCRBY', counts, 'final', 1) end
  if was and not now_final then redis.call('HINCRBY', counts, 'final', -1) end
  if new == 'succeeded' then
    local sec = tonumber(redis.call('TIME')[1])
    local slot = tostring(sec % 60)
    if redis.call('HGET', counts, 's' .. slot) ~= tostring(sec) then
      redis.call('HSET', counts, 's' .. slot, sec, 'r' .. slot, 0)
    end
    redis.call('HINCRBY', counts, 'r' .. slot, 1)
  elseif new == 'failed' or new == 'suppressed' then
    local raw = redis.call('HGET', job_key, 'error')
    if raw then
      local ok, err = pcall(cjson.decode, raw)
      if ok and type(err) == 'table' and type(err.code) == 'number' then
        redis.call('HINCRBY', counts, 'error:' .. string.format('%d', err.code), 1)
      end
    end
  end
end
local function tj_delivery(job_key, old, new)
  if old == new then return end
  local counts = tj_counts_key(job_key)
  if not counts then return end
  if old and old ~= '' then redis.call('HINCRBY', counts, 'delivery:' .. old, -1) end
  redis.call('HINCRBY', counts, 'delivery:' .. new, 1)
end
"""

RATE_WINDOW = 10


def summarize(raw: Mapping[str, str], now: float | None = None) -> dict[str, Any]:
    """Counts per status and delivery status, top error codes and the recent send rate."""
    now = time.time() if now is None else now
    statuses = {s.value: max(0, int(raw.get(s.value, 0))) for s in JobStatus}
    delivery = {
        k.split(":", 1)[1]: int(v)
        for k, v in raw.items()
        if k.startswith("delivery:") and int(v) > 0
    }
    errors = sorted(
        ((int(k.split(":", 1)[1]), int(v)) for k, v in raw.items() if k.startswith("error:")),
        key=lambda item: (-item[1], item[0]),
    )
    # Whole seconds before the current one, so a half-elapsed second does not drag it down.
    second = int(now)
    sent = 0
    for slot in range(60):
        stamp = raw.get(f"s{slot}")
        if stamp is not None and second - RATE_WINDOW <= int(stamp) < second:
            sent += int(raw.get(f"r{slot}", 0))
    return {
        "statuses": statuses,
        "delivery": delivery,
        "topErrors": [{"code": code, "count": count} for code, count in errors[:5] if count > 0],
        "final": int(raw.get("final", 0)),
        "rate": sent / RATE_WINDOW,
    }
