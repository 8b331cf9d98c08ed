"""Thin Celery tasks: each takes a job id and calls a plain handler."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis
from celery.exceptions import Reject

from producer.dispatch import SEND_BATCH_TASK, SEND_TASK
from worker.app import app
from worker.handlers import run_job
from worker.runtime import fast_path, runtime

log = logging.getLogger("twilio_jobs.worker")

STORE_RETRIES = 5


@app.task(name=SEND_TASK, ignore_result=True)
def send(job_id: str) -> str:
    """Send one job. The message carries only the id; the record says what to do."""
    for attempt in range(STORE_RETRIES):
        try:
            return run_job(job_id, runtime())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("job %s: job store unavailable (%s)", job_id, type(exc).__name__)
            time.sleep(min(2.0, 0.2 * 2**attempt))
    # Leave the message with the broker: it is delivered again once Redis answers.
    raise Reject("job store unavailable", requeue=True)


@app.task(name=SEND_BATCH_TASK, ignore_result=True)
def send_batch(job_ids: list[str]) -> dict[str, int]:
    """Send a chunk of campaign jobs concurrently; each keeps its own record and ledger."""
    try:
        return fast_path().send_batch(job_ids)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("batch of %d: job store unavailable (%s)", len(job_ids), type(exc).__name__)
        raise Reject("job store unavailable", requeue=True) from None


def publish(job_ids: Sequence[str]) -> None:
    with app.producer_or_acquire() as producer:
        for job_id in job_ids:
            send.apply_async(args=[job_id], producer=producer)


def notify(job_id: str, event: str) -> None:
    """Hook for result webhooks (a job reached a final state)."""
    log.debug("job %s: %s", job_id, event)
