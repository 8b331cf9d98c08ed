"""CAMPAIGN SLOT: the one place the benchmarks touch the campaigns API.

Campaigns (`producer.campaigns`, `Client.create_campaign`, the chunked `twilio_jobs.send_batch`
task) are being built separately. Until they exist, `available()` is false and the scripts
print "not built yet" rows. When they land, adapt `create()` below to the real signature; the
scripts (drain.py, enqueue.py) need no other change.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from bench.harness import SMS


def available() -> bool:
    if importlib.util.find_spec("producer.campaigns") is not None:
        return True
    from producer.client import Client

    return hasattr(Client, "create_campaign")


def recipients(n: int) -> list[str]:
    return [f"+1415{i:07d}" for i in range(n)]


def create(client: Any, n: int) -> str:
    """Accept one SMS campaign to `n` recipients; returns the campaign id.

    Assumed signature (adapt here when the campaigns API settles):
    `client.create_campaign(kind, template, recipients) -> campaign id or an object with .id`.
    """
    from producer.schemas import JobKind

    template = {k: v for k, v in SMS.items() if k != "to"}
    created = client.create_campaign(JobKind.sendSms, template, recipients(n))
    return str(getattr(created, "campaign_id", None) or getattr(created, "id", None) or created)
