"""Messages per second per sender (a `from` number or Messaging Service): GCRA, a single
"theoretical arrival time" per lane (`lua/rate.lua`). A grant may start a little in the future
(up to `HORIZON`), so several sends can be granted in one call and spaced exactly. Calls use the
same rule on one lane per account (`twilio_jobs.pacing.calls`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twilio_jobs.settings import Settings

TOLL_FREE_AREA_CODES = frozenset({"800", "833", "844", "855", "866", "877", "888"})

HORIZON = 0.25
"""How far ahead a grant may start: short enough to hold a slot idle only briefly."""


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


def interval(per_second: float) -> float:
    """Seconds between sends at `per_second`; 0 means unlimited."""
    return 1.0 / per_second if per_second > 0 else 0.0
