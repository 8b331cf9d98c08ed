"""CAMPAIGN SLOT: the one place the benchmarks touch the campaigns API.

Campaigns (`twilio_jobs.campaigns`, `Client.create_campaign`, the chunked `twilio_jobs.send_batch`
task) are being built separately. Until they exist, `available()` is false and the scripts
print "not built yet" rows. When they land, adapt `create()` below to the real signature; the
scripts (drain.py, enqueue.py) need no other change.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from bench.harness import SMS


def available() -> bool:
    if importlib.util.find_spec("twilio_jobs.campaigns") is not None:
        return True
    from twilio_jobs.client import Client

    return hasattr(Client, "create_campaign")


def recipients(n: int) -> list[str]:
    return [f"+1415{i:07d}" for i in range(n)]


def create(client: Any, n: int) -> str:
    """Accept one SMS campaign to `n` recipients; returns the campaign id."""
    template = {k: v for k, v in SMS.items() if k != "to"}
    created = client.create_campaign(
        kind="sendSms", recipients=[{"to": to} for to in recipients(n)], **template
    )
    return str(created.campaignId)
