"""Result webhook deliveries in Redis: a transactional outbox. The Lua script that ends a job
(`settle`, `claim`/`unclaim` through the gates, `cancel`) or records a Twilio delivery status
(`delivery_status`) writes the webhook delivery in the same atomic step (`lua/outbox.lua`): a
crash after the job's final write cannot lose its event. The webhook scheduler is the relay: it
publishes each new delivery's `twilio_jobs.webhook` task from `keys.WEBHOOK_SCHEDULE` within
`TWILIO_JOBS_SCHEDULER_INTERVAL`; the task delivers it.

One hash per event, `keys.webhook(id)` with id `<job id>-e<n>`: `jobId`, `owner`, `event`,
`url`, `record` (the job's public fields as they were at the event: the body sent, the same
bytes on every attempt, is rendered from them), `status` (pending -> sending -> retrying ->
delivered | failed), `attempts`, `lastError`, `lastAttemptAt`, `nextAt`, `createdAt` (unix),
and while it is being sent `lease` and `leaseUntil`. It lives as long as its job's record, and
at least `keys.WEBHOOK_MIN_TTL` (so that its retries can run out) until it is delivered; then
as long as a record created with it.

Every delivery that still needs work is in `keys.WEBHOOK_SCHEDULE`, scored by when it next needs
attention: a new one at once, one being sent when its lease runs out (its worker died), one
backing off when it is due. A crash anywhere loses nothing; at worst a receiver gets a delivery
twice, with the same `webhook-id` header (Standard Webhooks), by which it deduplicates. The job
hash shows the state of its latest delivery in its `webhook` field.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis

from twilio_jobs import keys, scripts
from twilio_jobs.schemas import JobRecord
from twilio_jobs.settings import Settings
from twilio_jobs.store import now_iso, render

log = logging.getLogger("twilio_jobs.webhooks")

Publish = Callable[[Sequence[str]], None]

NEW_GRACE = 60.0
"""Seconds before the scheduler publishes a replayed delivery again, in case its task was lost."""


@dataclass(frozen=True)
class Claimed:
    id: str
    lease: str
    attempts: int
    job_id: str
    event: str
    url: str
    body: bytes


def payload(job_id: str, fields: Mapping[str, str]) -> bytes:
    """The job record as `GET /api/jobs/{id}` shows it, less its own webhook state."""
    record = JobRecord.model_validate(render(job_id, fields))
    shown = record.model_dump(mode="json", exclude={"webhook"})
    return json.dumps(shown, separators=(",", ":")).encode()


def state(
    delivery_id: str,
    event: str,
    status: str,
    attempts: int = 0,
    error: str | None = None,
    at: str | None = None,
) -> str:
    return json.dumps(
        {
            "id": delivery_id,
            "event": event,
            "status": status,
            "attempts": attempts,
            "lastError": error,
            "lastAttemptAt": at,
        },
        separators=(",", ":"),
    )


def job_of(delivery_id: str) -> str:
    return delivery_id.rsplit("-", 1)[0]


class Outbox:
    def __init__(self, redis: Redis, settings: Settings, publish: Publish) -> None:
        self.redis = redis
        self.settings = settings
        self.publish = publish
        self._enqueue = scripts.register(redis, "webhook_enqueue")
        self._claim = scripts.register(redis, "webhook_claim")
        self._finish = scripts.register(redis, "webhook_finish")
        self._replay = scripts.register(redis, "webhook_replay")

    # -- producing events ----------------------------------------------------------------------

    def enqueue(self, job_id: str, event: str) -> str | None:
        """Record a delivery of the job's current record (the relay publishes it). None when
        the job has no callback URL or no longer exists. The scripts that end a job do this
        themselves, in the same step; this is for events of no such script."""
        created = self._enqueue(keys=[keys.job(job_id)], args=[event])
        return str(created) if created else None

    def replay(self, job_id: str, now: float | None = None) -> list[str]:
        """Queue the job's exhausted deliveries again from their first attempt."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", job_id) + "-*"
        found = [
            str(member)
            for member, _ in self.redis.zscan_iter(keys.WEBHOOKS_FAILED, match=pattern)
            if job_of(str(member)) == job_id
        ]
        due = (now if now is not None else time.time()) + NEW_GRACE
        replayed = []
        for delivery_id in found:
            event = str(self.redis.hget(keys.webhook(delivery_id), "event") or "")
            if self._replay(
                keys=[
                    keys.webhook(delivery_id),
                    keys.WEBHOOK_SCHEDULE,
                    keys.WEBHOOKS_FAILED,
                    keys.job(job_id),
                ],
                args=[delivery_id, repr(due), state(delivery_id, event, "pending")],
            ):
                replayed.append(delivery_id)
        if replayed:
            self.publish(replayed)
        return replayed

    # -- delivering (the worker) ---------------------------------------------------------------

    def claim(self, delivery_id: str, now: float, lease_seconds: float) -> Claimed | str:
        """The delivery, leased to the caller for one attempt; or why not (`missing`, `done`,
        `busy`, `early`)."""
        lease = secrets.token_hex(8)
        reply = [
            x.decode() if isinstance(x, bytes) else str(x)
            for x in self._claim(
                keys=[keys.webhook(delivery_id), keys.WEBHOOK_SCHEDULE],
                args=[repr(now), repr(now + lease_seconds), lease, delivery_id],
            )
        ]
        if reply[0] != "ok":
            return reply[0]
        attempts, job_id, event, url, body, record = reply[1:7]
        raw = body.encode() if body else payload(job_id, json.loads(record))
        return Claimed(delivery_id, lease, int(attempts), job_id, event, url, raw)

    def finish(
        self,
        claimed: Claimed,
        status: str,
        now: float,
        *,
        error: str | None = None,
        due: float | None = None,
    ) -> bool:
        """Record an attempt's outcome, if the lease still holds."""
        stamp = now_iso(now)
        return bool(
            self._finish(
                keys=[
                    keys.webhook(claimed.id),
                    keys.WEBHOOK_SCHEDULE,
                    keys.WEBHOOKS_FAILED,
                    keys.job(claimed.job_id),
                ],
                args=[
                    claimed.lease,
                    status,
                    error or "",
                    stamp,
                    repr(due) if due is not None else "",
                    claimed.id,
                    repr(now),
                    state(claimed.id, claimed.event, status, claimed.attempts, error, stamp),
                    self.settings.result_ttl,
                ],
            )
        )

    # -- reading -------------------------------------------------------------------------------

    def failed(self, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        """Exhausted deliveries of this owner's jobs, newest first."""
        found: list[dict[str, Any]] = []
        start, page = 0, max(limit, 100)
        while len(found) < limit:
            batch = cast(
                list[tuple[str, float]],
                self.redis.zrevrange(
                    keys.WEBHOOKS_FAILED, start, start + page - 1, withscores=True
                ),
            )
            if not batch:
                break
            start += len(batch)
            pipe = self.redis.pipeline(transaction=False)
            for member, _ in batch:
                pipe.hgetall(keys.webhook(str(member)))
            gone = []
            for (member, score), fields in zip(batch, pipe.execute(), strict=True):
                if not fields:
                    gone.append(member)
                elif fields.get("owner", "") == owner and len(found) < limit:
                    found.append(_failed_entry(str(member), fields, float(score)))
            if gone:
                self.redis.zrem(keys.WEBHOOKS_FAILED, *gone)
                start -= len(gone)
        return found


def _failed_entry(delivery_id: str, fields: Mapping[str, str], failed_at: float) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "jobId": fields.get("jobId"),
        "event": fields.get("event"),
        "url": fields.get("url"),
        "attempts": int(fields.get("attempts", 0)),
        "lastError": fields.get("lastError") or None,
        "lastAttemptAt": fields.get("lastAttemptAt") or None,
        "failedAt": now_iso(failed_at),
    }
