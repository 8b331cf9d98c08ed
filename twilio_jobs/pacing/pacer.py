"""The pacer: every limit of `twilio_jobs.pacing` checked in one atomic acquire
(`lua/acquire.lua`), plus the AIMD cut on 429 (`lua/throttle.lua`) and places in line for jobs
that cannot start soon (`lua/backlog.lua`)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence
from typing import Any

from twilio_jobs import keys, scripts
from twilio_jobs.pacing.inflight import throttle_args
from twilio_jobs.pacing.lane import Grant, Lane
from twilio_jobs.pacing.rate import HORIZON
from twilio_jobs.settings import Settings


class Pacer:
    """The pacing scripts over one Redis client (sync or asyncio: both have `register_script`)."""

    def __init__(self, redis: Any, settings: Settings, holder: str = "") -> None:
        self.redis = redis
        self.settings = settings
        self.lease_seconds = settings.connect_timeout + settings.read_timeout + 5.0
        self._acquire = scripts.register(redis, "acquire")
        self._throttle = scripts.register(redis, "throttle")
        self._backlog = scripts.register(redis, "backlog")
        # In-flight slot ids start with the holder: a worker's heartbeat id, so that the slots
        # of a dead worker are freed at once (lua/reap_claims.lua), not when they expire.
        self.holder = holder or secrets.token_hex(6)
        self._counter = itertools.count()

    def acquire_args(
        self, lane: Lane, want: int, now: float | None, release: Sequence[str] = ()
    ) -> tuple[list[str], list[Any], str]:
        prefix = f"{self.holder}:{next(self._counter)}"
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
        return throttle_args(account, self.settings, _clock(now), retry_after)

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
        return float(self._throttle(keys=[keys.aimd(account), keys.AIMD_ACCOUNTS], args=args))

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


__all__ = ["Grant", "Lane", "Pacer"]
