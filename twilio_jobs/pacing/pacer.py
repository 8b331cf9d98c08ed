"""Global pacing in Redis, shared by every worker process on every machine.

Three limits, each one atomic Lua script (`lua/acquire.lua`, `throttle.lua`, `backlog.lua`)
over a few keys (`twilio_jobs.keys`):
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

from twilio_jobs import keys, scripts
from twilio_jobs.limits import account_cap, sender_of, sender_rate
from twilio_jobs.schemas import JobKind
from twilio_jobs.settings import Settings

HORIZON = 0.25
"""How far ahead a grant may start: short enough to hold a slot idle only briefly."""

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
        campaign = keys.campaign(self.campaign) if self.campaign else keys.NO_CAMPAIGN
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
        self._acquire = scripts.register(redis, "acquire")
        self._throttle = scripts.register(redis, "throttle")
        self._backlog = scripts.register(redis, "backlog")
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
