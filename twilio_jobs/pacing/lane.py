"""Where a send waits, and what an acquire grants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twilio_jobs import keys
from twilio_jobs.pacing import calls, rate
from twilio_jobs.pacing.campaign_gate import campaign_key
from twilio_jobs.pacing.inflight import account_cap
from twilio_jobs.schemas import JobKind
from twilio_jobs.settings import Settings
from twilio_jobs.twilio.endpoints import endpoint


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
        by = endpoint(kind).lane
        if by == "calls":
            name, per_second = calls.LANE, calls.calls_rate(s)
        elif by == "service":
            # Verify paces its own sends per service: only the account's in-flight limit here.
            name, per_second = f"service:{params.get('ServiceSid', '')}", 0.0
        else:
            name = rate.sender_of(params)
            per_second = rate.sender_rate(name, s)
        return cls(account, name, rate.interval(per_second), account_cap(account, s), campaign)

    def keys(self) -> list[str]:
        return [
            keys.in_flight(self.account),
            keys.aimd(self.account),
            keys.rate(self.account, self.name),
            campaign_key(self.campaign),
            keys.in_flight_asks(self.account),
        ]


@dataclass(frozen=True)
class Grant:
    """Outcome of one acquire: `leases` with their `starts` (seconds from now), or none and
    `wait` (seconds) with the `reason`: inflight | rate | hold | paused | cancelled."""

    leases: tuple[str, ...] = ()
    starts: tuple[float, ...] = ()
    wait: float = 0.0
    reason: str = ""
