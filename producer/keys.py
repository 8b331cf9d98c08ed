"""Every Redis key the service uses, in one place."""

from __future__ import annotations

PREFIX = "tj:"


def job(job_id: str) -> str:
    """Hash: the job record, its Twilio parameters, encrypted credentials and send ledger."""
    return f"{PREFIX}job:{job_id}"


def idempotency(owner: str, key: str) -> str:
    """String: `<job id> <payload digest>` for 24 hours."""
    return f"{PREFIX}idem:{owner}:{key}"


SCHEDULE = f"{PREFIX}schedule"
"""Sorted set of job ids by the unix time they are due: sendAt, retry backoff, reconciliation."""

SCHEDULER_LOCK = f"{PREFIX}scheduler:lock"


def webhook(delivery_id: str) -> str:
    """Hash: one result-webhook delivery (event, url, body snapshot, attempts, state)."""
    return f"{PREFIX}webhook:{delivery_id}"


WEBHOOK_SCHEDULE = f"{PREFIX}webhooks:schedule"
"""Sorted set of webhook delivery ids by the unix time they are due: new ones (a safety net for
a lost task), ones being sent (until their lease runs out) and ones backing off."""

WEBHOOK_SCHEDULER_LOCK = f"{PREFIX}webhooks:scheduler:lock"

WEBHOOKS_FAILED = f"{PREFIX}webhooks:failed"
"""Sorted set of exhausted webhook delivery ids by the unix time they gave up."""

IDEMPOTENCY_TTL = 24 * 3600
