"""Result webhook delivery: one attempt per task run, plain functions over their collaborators.

A 2xx ends a delivery. Anything else (another status, including redirects, which are never
followed; a timeout; a refused connection) is retried with exponential backoff and jitter
through the webhook schedule set, up to TWILIO_JOBS_WEBHOOK_MAX_ATTEMPTS; then the delivery is
listed as failed. A URL the SSRF guard refuses fails at once. None of this touches the job's
own outcome or its send ledger.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from twilio_jobs import keys, tracing
from twilio_jobs.errors import WebhookError, WebhookRefused
from twilio_jobs.outbox import Claimed, Outbox
from twilio_jobs.settings import Settings
from twilio_jobs.signing import DELIVERY_HEADER, EVENT_HEADER, JOB_ID_HEADER, webhook_headers
from worker.handlers import backoff
from worker.ssrf import Resolver, check_url, resolve

log = logging.getLogger("twilio_jobs.webhooks")

USER_AGENT = "twilio-jobs-webhooks/0.1"
MAX_ANSWER_BYTES = 64 * 1024


@dataclass
class WebhookRuntime:
    settings: Settings
    outbox: Outbox
    http: httpx.Client
    resolver: Resolver = resolve
    clock: Callable[[], float] = time.time
    jitter: Callable[[], float] = field(default=random.random)

    @property
    def lease_seconds(self) -> float:
        # connect, write and read may each take up to the timeout
        return 3 * self.settings.webhook_timeout + 5.0


def http_client(settings: Settings) -> httpx.Client:
    """One pooled client per process. No redirects, and no proxy from the environment: the
    request goes to the address the SSRF guard checked."""
    return httpx.Client(
        timeout=httpx.Timeout(settings.webhook_timeout, connect=settings.connect_timeout),
        limits=httpx.Limits(
            max_connections=settings.webhook_pool_size,
            max_keepalive_connections=settings.webhook_pool_size,
        ),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def post(claimed: Claimed, rt: WebhookRuntime) -> int:
    """POST the delivery's body once; returns the HTTP status."""
    target = check_url(claimed.url, rt.settings.webhook_allow_private, rt.resolver)
    headers = {
        **target.headers,
        "Content-Type": "application/json",
        EVENT_HEADER: claimed.event,
        JOB_ID_HEADER: claimed.job_id,
        DELIVERY_HEADER: claimed.id,
        **webhook_headers(claimed.id, claimed.body, rt.settings.webhook_secrets, int(rt.clock())),
    }
    try:
        with rt.http.stream(
            "POST",
            target.url,
            content=claimed.body,
            headers=headers,
            extensions=target.extensions,
        ) as response:
            # A short answer is read so the connection can go back to the pool; a long one
            # is dropped unread.
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) <= MAX_ANSWER_BYTES:
                response.read()
            return response.status_code
    except httpx.TimeoutException as exc:
        raise WebhookError(f"Timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise WebhookError(f"{type(exc).__name__}: {exc}") from None


def deliver(delivery_id: str, rt: WebhookRuntime) -> str:
    """One attempt at one delivery. Returns what happened, for logs and tests."""
    claimed = rt.outbox.claim(delivery_id, rt.clock(), rt.lease_seconds)
    if isinstance(claimed, str):
        return claimed
    parent = ""
    if tracing.enabled():  # the job's trace: the webhook is its last step
        parent = str(rt.outbox.redis.hget(keys.job(claimed.job_id), "trace") or "")
    attributes = {
        "twilio_jobs.job_id": claimed.job_id,
        "twilio_jobs.event": claimed.event,
        "twilio_jobs.attempt": claimed.attempts,
    }
    with tracing.span("twilio_jobs.webhook", parent=parent, kind="client", attributes=attributes):
        return _attempt(delivery_id, claimed, rt)


def _attempt(delivery_id: str, claimed: Claimed, rt: WebhookRuntime) -> str:
    try:
        status = post(claimed, rt)
    except WebhookRefused as exc:
        log.warning("webhook %s: %s", delivery_id, exc.message)
        rt.outbox.finish(claimed, "failed", rt.clock(), error=exc.message)
        return "refused"
    except WebhookError as exc:
        error = exc.message
    else:
        if 200 <= status < 300:
            rt.outbox.finish(claimed, "delivered", rt.clock())
            return "delivered"
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    now = rt.clock()
    if claimed.attempts >= rt.settings.webhook_max_attempts:
        log.warning(
            "webhook %s: gave up after %d attempts: %s", delivery_id, claimed.attempts, error
        )
        rt.outbox.finish(claimed, "failed", now, error=error)
        return "failed"
    delay = backoff(
        claimed.attempts,
        rt.settings.webhook_backoff_base,
        rt.settings.webhook_backoff_max,
        rt.jitter(),
    )
    rt.outbox.finish(claimed, "retrying", now, error=error, due=now + delay)
    return "retrying"
