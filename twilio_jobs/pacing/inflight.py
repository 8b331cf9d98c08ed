"""Requests in flight per account (`lua/inflight.lua`): a sorted set of leases scored by their
expiry, so the slots of a worker that died mid-request come back by themselves. On 429/20429
AIMD halves the account's limit (at most once per `aimd_cut_interval`, `lua/throttle.lua`) and
regains it additively per second; `Retry-After` holds the account."""

from __future__ import annotations

from typing import Any

from redis import Redis

from twilio_jobs import keys
from twilio_jobs.settings import Settings


def account_cap(account: str, settings: Settings) -> int:
    """The configured in-flight limit of an account."""
    return int(settings.account_limits.get(account, settings.account_max_in_flight))


def current_limit(redis: Redis, account: str, settings: Settings, now: float) -> dict[str, Any]:
    """The account's in-flight limit as AIMD has it now, and how many requests are in flight."""
    cap = account_cap(account, settings)
    raw = redis.hmget(keys.aimd(account), "limit", "at")
    limit = float(cap)
    if raw[0] is not None and raw[1] is not None:
        recovered = float(raw[0]) + (now - float(raw[1])) * settings.aimd_recover_per_second
        limit = min(float(cap), recovered)
    in_flight = int(redis.zcount(keys.in_flight(account), now, "+inf"))
    return {"inFlightLimit": int(limit), "maxInFlight": cap, "inFlight": in_flight}


def throttle_args(
    account: str, settings: Settings, now: str, retry_after: float | None
) -> list[Any]:
    """ARGV of `lua/throttle.lua` (`now` as the scripts take it: '' for Redis's clock)."""
    hold = min(retry_after or 0.0, settings.retry_after_max)
    return [
        now,
        account_cap(account, settings),
        repr(settings.aimd_recover_per_second),
        repr(settings.aimd_cut_interval),
        repr(hold),
        account,
    ]
