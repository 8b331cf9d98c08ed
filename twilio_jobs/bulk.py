"""Failed-job recovery and cleanup in bulk, over the tenant's indexes (`twilio_jobs.search`):
retry every failed job a filter finds (but never one whose outcome a retry cannot change:
an opted-out recipient, an invalid number), or cancel every job a filter finds that has not
been sent yet. The matching ids are read first, then acted on one by one through the same
`retry` and `cancel` as a single job's, so each keeps its own lifecycle and ledger."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from twilio_jobs.errors import Conflict, InvalidRequest, JobNotFound
from twilio_jobs.lifecycle import JobStatus

if TYPE_CHECKING:
    from twilio_jobs.client import Client

NEVER_RETRY = frozenset({21610, 21211, 21217, 21614, 60200})
"""Outcomes a retry would only repeat: the recipient opted out (21610); the number is invalid
(21211, 21217), not a mobile number (21614), or refused by Verify (60200)."""
UNSENT = (JobStatus.scheduled, JobStatus.queued, JobStatus.retrying)
MAX_MATCHES = 100_000
PAGE = 500


class JobFilter(BaseModel):
    """Which of the caller's jobs: all filters optional, combined."""

    campaignId: str | None = None
    errorCode: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class BulkOutcome(BaseModel):
    matched: int
    done: int
    """Retried or cancelled."""
    skipped: dict[str, int] = {}
    """Why the others were left: `<error code>` (never retried), `changed` (no longer in a
    state to act on), `credentials` (no token for its account)."""


def _ids(client: Client, owner: str, status: JobStatus, flt: JobFilter) -> list[tuple[str, int]]:
    """(job id, error code or 0) of every match, read before anything is changed."""
    found: list[tuple[str, int]] = []
    cursor: str | None = None
    while len(found) < MAX_MATCHES:
        page = client.list_jobs(
            owner=owner, status=status, campaign_id=flt.campaignId, error_code=flt.errorCode,
            since=flt.since, until=flt.until, cursor=cursor, limit=PAGE,
        )  # fmt: skip
        found += [(j.jobId, (j.error.code if j.error else None) or 0) for j in page.jobs]
        if not page.nextCursor:
            break
        cursor = page.nextCursor
    return found


def _each(ids: list[str], act: Callable[[str], object], skipped: Counter[str]) -> int:
    done = 0
    for job_id in ids:
        try:
            act(job_id)
        except (Conflict, JobNotFound):
            skipped["changed"] += 1
        except InvalidRequest:
            skipped["credentials"] += 1
        else:
            done += 1
    return done


def retry_failed(
    client: Client, owner: str, flt: JobFilter, account_token: str | None = None
) -> BulkOutcome:
    """Run the matching failed jobs again, with `account_token` for all of them (or the
    server's default account's); never a job that failed with a code in NEVER_RETRY."""
    matches = _ids(client, owner, JobStatus.failed, flt)
    skipped: Counter[str] = Counter(str(code) for _, code in matches if code in NEVER_RETRY)
    wanted = [job_id for job_id, code in matches if code not in NEVER_RETRY]
    done = _each(wanted, lambda j: client.retry(j, account_token, owner=owner), skipped)
    return BulkOutcome(matched=len(matches), done=done, skipped=dict(skipped))


def cancel_matching(
    client: Client, owner: str, flt: JobFilter, status: JobStatus | None = None
) -> BulkOutcome:
    """Cancel the matching jobs not yet handed to Twilio (scheduled, queued, retrying)."""
    if status is not None and status not in UNSENT:
        raise InvalidRequest(f"Only unsent jobs can be cancelled, not {status.value} ones")
    ids = [j for s in ((status,) if status else UNSENT) for j, _ in _ids(client, owner, s, flt)]
    skipped: Counter[str] = Counter()
    done = _each(ids, lambda j: client.cancel(j, owner=owner), skipped)
    return BulkOutcome(matched=len(ids), done=done, skipped=dict(skipped))


__all__ = ["NEVER_RETRY", "BulkOutcome", "JobFilter", "cancel_matching", "retry_failed"]
