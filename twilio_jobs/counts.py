"""Campaign counters: what `tj_move` (`lua/lifecycle.lua`) keeps in Redis, read back.

A campaign's dashboard must not read 100,000 job hashes, so the one function through which
every status change goes counts it in the campaign's counters hash (`keys.campaign_counts`):
one field per job status, `delivery:<status>`, `error:<code>` for jobs that ended failed or
suppressed, `final` (jobs in a final state), and a 60-slot ring of successful sends per second
(`s<slot>` = the second, `r<slot>` = the count).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from twilio_jobs.lifecycle import JobStatus

RATE_WINDOW = 10


def _top(raw: Mapping[str, str], prefix: str) -> list[dict[str, int]]:
    """The five most frequent error codes counted under `prefix`."""
    found = sorted(
        ((int(k.split(":", 1)[1]), int(v)) for k, v in raw.items() if k.startswith(prefix)),
        key=lambda item: (-item[1], item[0]),
    )
    return [{"code": code, "count": count} for code, count in found[:5] if count > 0]


def summarize(raw: Mapping[str, str], now: float | None = None) -> dict[str, Any]:
    """Counts per status and delivery status, top error codes and the recent send rate."""
    now = time.time() if now is None else now
    statuses = {s.value: max(0, int(raw.get(s.value, 0))) for s in JobStatus}
    delivery = {
        k.split(":", 1)[1]: int(v)
        for k, v in raw.items()
        if k.startswith("delivery:") and int(v) > 0
    }
    errors = _top(raw, "error:")
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
        "topErrors": errors,
        "deliveryErrors": _top(raw, "deliveryError:"),
        "final": int(raw.get("final", 0)),
        "rate": sent / RATE_WINDOW,
    }
