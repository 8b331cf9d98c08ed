"""Thin Celery tasks: each takes a job (or webhook delivery) id and calls a plain handler with
the collaborators of the composition root (`worker.root`)."""

from __future__ import annotations

import logging
import time

import redis
from celery.exceptions import Reject

from twilio_jobs.dispatch import SEND_BATCH_TASK, SEND_TASK, WEBHOOK_TASK
from worker.app import app
from worker.handlers import run_job
from worker.metrics import WEBHOOKS
from worker.webhooks import deliver

log = logging.getLogger("twilio_jobs.worker")

STORE_RETRIES = 5


@app.task(name=SEND_TASK, ignore_result=True)
def send(job_id: str) -> str:
    """Send one job. The message carries only the id; the record says what to do."""
    for attempt in range(STORE_RETRIES):
        try:
            return run_job(job_id, app.root.runtime)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("job %s: job store unavailable (%s)", job_id, type(exc).__name__)
            time.sleep(min(2.0, 0.2 * 2**attempt))
    # Leave the message with the broker: it is delivered again once Redis answers.
    raise Reject("job store unavailable", requeue=True)


@app.task(name=SEND_BATCH_TASK, ignore_result=True)
def send_batch(job_ids: list[str]) -> dict[str, int]:
    """Send a chunk of campaign jobs concurrently; each keeps its own record and ledger."""
    try:
        return app.root.fast_path.send_batch(job_ids)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("batch of %d: job store unavailable (%s)", len(job_ids), type(exc).__name__)
        raise Reject("job store unavailable", requeue=True) from None


@app.task(name=WEBHOOK_TASK, ignore_result=True)
def webhook(delivery_id: str) -> str:
    """One attempt at one result webhook. Retries wait in the webhook schedule set."""
    try:
        result = deliver(delivery_id, app.root.webhooks)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # The schedule set still holds the delivery; the scheduler releases it again.
        log.warning("webhook %s: job store unavailable (%s)", delivery_id, type(exc).__name__)
        return "store-unavailable"
    if result in ("delivered", "retrying", "failed", "refused"):
        WEBHOOKS.labels(result).inc()
    return result
