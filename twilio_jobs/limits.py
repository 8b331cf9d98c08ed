"""The configured pacing limits, read by the worker that enforces them
(`twilio_jobs.pacing.pacer`) and by the producer that estimates a campaign's send time and
reports an account's current limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis import Redis

from twilio_jobs import keys
from twilio_jobs.settings import Settings

TOLL_FREE_AREA_CODES = frozenset({"800", "833", "844", "855", "866", "877", "888"})


def sender_of(params: Mapping[str, Any]) -> str:
    """The rate lane of a message: its `From`, else its Messaging Service."""
    return str(params.get("From") or params.get("MessagingServiceSid") or "")


def sender_rate(sender: str, settings: Settings) -> float:
    """Messages per second for a sender: its own setting, else the default for its type."""
    if sender in settings.sender_rates:
        return float(settings.sender_rates[sender])
    if sender.startswith("MG"):
        return settings.messaging_service_mps
    if sender.isdigit() and len(sender) <= 8:
        return settings.short_code_mps
    if sender.startswith("+1") and sender[2:5] in TOLL_FREE_AREA_CODES:
        return settings.toll_free_mps
    return settings.long_code_mps


def account_cap(account: str, settings: Settings) -> int:
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
