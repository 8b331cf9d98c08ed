"""Calls per second per account: the rate rule (`twilio_jobs.pacing.rate`) on one lane."""

from __future__ import annotations

from twilio_jobs.settings import Settings

LANE = "calls"


def calls_rate(settings: Settings) -> float:
    return settings.calls_per_second
