"""Global pacing in Redis, shared by every worker process on every machine.

Three limits, each one atomic Lua over a few keys (`twilio_jobs.keys`):
- requests in flight per account: a sorted set of leases scored by their expiry, so the slots
  of a worker that died mid-request come back by themselves;
- messages per second per sender (a `from` number or Messaging Service) and calls per second
  per account: GCRA, a single "theoretical arrival time" per lane. A grant may start a little
  in the future (up to `horizon`), so several sends can be granted in one call and spaced
  exactly;
- AIMD on 429/20429: the account's in-flight limit is halved (at most once per
  `aimd_cut_interval`) and regained additively per second; `Retry-After` holds the account.

Times are Redis's own clock (TIME), so workers on machines whose clocks differ, or a thread
that read its clock and then waited for the GIL, cannot squeeze two sends together; tests pass
an explicit `now`. A job that cannot start soon is not kept waiting in a worker: `backlog_due`
hands it a place in line on its lane, and it goes back through the scheduler until then.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twilio_jobs import keys
from twilio_jobs.limits import account_cap, sender_of, sender_rate
from twilio_jobs.schemas import JobKind
from twilio_jobs.settings import Settings

# Shared by the scripts below: the time (the caller's, or Redis's clock when ARGV gives ''),
# and an account's AIMD limit grown back additively since it was last cut.
PRELUDE = """
local function tj_now(given)
  local now = tonumber(given)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function tj_recovered(limit, at, cap, per_second, now)
  return math.min(cap, tonumber(limit) + (now - tonumber(at)) * per_second)
end
"""

# KEYS: in-flight set, AIMD hash, rate lane (GCRA TAT), campaign hash (or a missing key).
# ARGV: now ('' for Redis's clock), wanted, lease seconds, lease id prefix, configured in-flight
# cap, seconds between sends (0: no rate limit), horizon, recovery per second, lease ids to free.
# Returns {n, start...} (seconds from now) | {0, wait, reason} | {-1, campaign state}.
ACQUIRE = (
    PRELUDE
    + """
local now = tj_now(ARGV[1])
for i = 9, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
local state = redis.call('HGET', KEYS[4], 'state')
if state and state ~= 'active' then return {-1, state} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cap = tonumber(ARGV[5])
local limit = cap
local a = redis.call('HMGET', KEYS[2], 'limit', 'at', 'hold')
if a[1] then
  limit = tj_recovered(a[1], a[2], cap, tonumber(ARGV[8]), now)
end
if a[3] and tonumber(a[3]) > now then return {0, tostring(tonumber(a[3]) - now), 'hold'} end
local n = math.min(tonumber(ARGV[2]), math.floor(limit) - redis.call('ZCARD', KEYS[1]))
if n <= 0 then return {0, '0', 'inflight'} end
local interval = tonumber(ARGV[6])
local first = now
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tat > now then first = tat end
  local horizon = tonumber(ARGV[7])
  local fit = math.floor((now + horizon - first) / interval) + 1
  if fit <= 0 then return {0, tostring(first - horizon - now), 'rate'} end
  n = math.min(n, fit)
  local next_tat = first + n * interval
  redis.call('SET', KEYS[3], tostring(next_tat), 'PX', math.ceil((next_tat - now) * 1000) + 1000)
end
local expiry = now + tonumber(ARGV[3])
local reply = {n}
for i = 1, n do
  redis.call('ZADD', KEYS[1], expiry, ARGV[4] .. ':' .. i)
  reply[i + 1] = tostring(first + (i - 1) * interval - now)
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000) + 1000)
return reply
"""
)

# KEYS: AIMD hash. ARGV: now, cap, recovery per second, cut interval, retry-after (0: none).
# Returns the new limit.
THROTTLE = (
    PRELUDE
    + """
local now = tj_now(ARGV[1])
local cap, inc = tonumber(ARGV[2]), tonumber(ARGV[3])
local a = redis.call('HMGET', KEYS[1], 'limit', 'at', 'cut', 'hold')
local limit = cap
if a[1] then limit = tj_recovered(a[1], a[2], cap, inc, now) end
if not a[3] or now - tonumber(a[3]) >= tonumber(ARGV[4]) then
  limit = math.max(1, math.floor(limit / 2))
  redis.call('HSET', KEYS[1], 'limit', tostring(limit), 'at', tostring(now), 'cut', tostring(now))
end
local hold = tonumber(a[4] or '0')
if tonumber(ARGV[5]) > 0 and now + tonumber(ARGV[5]) > hold then
  hold = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], 'hold', tostring(hold))
end
local keep = (cap - limit) / math.max(inc, 0.001) + math.max(0, hold - now) + 60
redis.call('EXPIRE', KEYS[1], math.ceil(keep))
return tostring(limit)
"""
)

# KEYS: backlog of the lane, its GCRA TAT. ARGV: now, seconds between sends, lead.
# Returns when a re-queued job should come back: one interval after the last place handed out.
BACKLOG = (
    PRELUDE
    + """
local now = tj_now(ARGV[1])
local interval = tonumber(ARGV[2])
local last = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'),
                      tonumber(redis.call('GET', KEYS[2]) or '0'))
local place = last + interval
redis.call('SET', KEYS[1], tostring(place), 'PX', math.ceil((place - now) * 1000) + 1000)
return tostring(math.max(now, place - tonumber(ARGV[3])))
"""
)

HORIZON = 0.25
"""How far ahead a grant may start: short enough to hold a slot idle only briefly."""

NO_CAMPAIGN = f"{keys.PREFIX}campaign:-"


@dataclass(frozen=True)
class Lane:
    """Where a send waits: the account's in-flight set plus one rate lane."""

    account: str
    name: str  # the sender, or "calls"
    interval: float  # seconds between sends; 0: unlimited
    cap: int
    campaign: str = ""

    @classmethod
    def of(
        cls, kind: JobKind, account: str, params: Mapping[str, Any], campaign: str, s: Settings
    ) -> Lane:
        if kind is JobKind.makeCall:
            name, per_second = "calls", s.calls_per_second
        else:
            name = sender_of(params)
            per_second = sender_rate(name, s)
        interval = 1.0 / per_second if per_second > 0 else 0.0
        return cls(account, name, interval, account_cap(account, s), campaign)

    def keys(self) -> list[str]:
        campaign = keys.campaign(self.campaign) if self.campaign else NO_CAMPAIGN
        return [
            keys.in_flight(self.account),
            keys.aimd(self.account),
            keys.rate(self.account, self.name),
            campaign,
        ]


@dataclass(frozen=True)
class Grant:
    """Outcome of one acquire: `leases` with their `starts` (seconds from now), or none and
    `wait` (seconds) with the `reason`: inflight | rate | hold | paused | cancelled."""

    leases: tuple[str, ...] = ()
    starts: tuple[float, ...] = ()
    wait: float = 0.0
    reason: str = ""


class Pacer:
    """The pacing scripts over one Redis client (sync or asyncio: both have `register_script`)."""

    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.lease_seconds = settings.connect_timeout + settings.read_timeout + 5.0
        self._acquire = redis.register_script(ACQUIRE)
        self._throttle = redis.register_script(THROTTLE)
        self._backlog = redis.register_script(BACKLOG)
        self._holder = secrets.token_hex(6)
        self._counter = itertools.count()

    def acquire_args(
        self, lane: Lane, want: int, now: float | None, release: Sequence[str] = ()
    ) -> tuple[list[str], list[Any], str]:
        prefix = f"{self._holder}:{next(self._counter)}"
        args = [
            _clock(now),
            want,
            repr(self.lease_seconds),
            prefix,
            lane.cap,
            repr(lane.interval),
            repr(HORIZON),
            repr(self.settings.aimd_recover_per_second),
            *release,
        ]
        return lane.keys(), args, prefix

    @staticmethod
    def grant(reply: Sequence[Any], prefix: str) -> Grant:
        n = int(reply[0])
        if n > 0:
            starts = tuple(max(0.0, float(x)) for x in reply[1 : n + 1])
            return Grant(tuple(f"{prefix}:{i}" for i in range(1, n + 1)), starts)
        if n < 0:
            return Grant(reason=str(reply[1]))
        return Grant(wait=max(0.0, float(reply[1])), reason=str(reply[2]))

    def throttle_args(
        self, account: str, now: float | None, retry_after: float | None
    ) -> list[Any]:
        hold = min(retry_after or 0.0, self.settings.retry_after_max)
        return [
            _clock(now),
            account_cap(account, self.settings),
            repr(self.settings.aimd_recover_per_second),
            repr(self.settings.aimd_cut_interval),
            repr(hold),
        ]

    # -- asyncio use (the campaign fast path; `redis` is a redis.asyncio client) -------------

    async def aacquire(
        self, lane: Lane, now: float | None, want: int, release: Sequence[str]
    ) -> Grant:
        keys_, args, prefix = self.acquire_args(lane, want, now, release)
        return self.grant(await self._acquire(keys=keys_, args=args), prefix)

    async def arelease(self, account: str, leases: Sequence[str]) -> None:
        await self.redis.zrem(keys.in_flight(account), *leases)

    # -- synchronous use (the threads path) -------------------------------------------------

    def acquire(self, lane: Lane, now: float | None = None, want: int = 1) -> Grant:
        keys_, args, prefix = self.acquire_args(lane, want, now)
        return self.grant(self._acquire(keys=keys_, args=args), prefix)

    def release(self, lane: Lane, leases: Sequence[str]) -> None:
        if leases:
            self.redis.zrem(keys.in_flight(lane.account), *leases)

    def throttled(self, account: str, now: float | None, retry_after: float | None) -> float:
        args = self.throttle_args(account, now, retry_after)
        return float(self._throttle(keys=[keys.aimd(account)], args=args))

    def backlog_due(self, lane: Lane, now: float | None = None) -> float:
        """When a job that cannot start soon should come back: its place in line on the lane."""
        return float(
            self._backlog(
                keys=[keys.backlog(lane.account, lane.name), keys.rate(lane.account, lane.name)],
                args=[_clock(now), repr(lane.interval), repr(self.settings.pace_max_wait / 2)],
            )
        )


def _clock(now: float | None) -> str:
    return "" if now is None else repr(now)
