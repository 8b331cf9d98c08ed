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

IDEMPOTENCY_TTL = 24 * 3600
