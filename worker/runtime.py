"""The per-process collaborators of the tasks: one Redis pool, one Twilio HTTP session, one
webhook HTTP client."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from redis import Redis

from twilio_jobs import keys
from twilio_jobs.crypto import Cipher
from twilio_jobs.gates import Gates
from twilio_jobs.ledger import Ledger
from twilio_jobs.outbox import Outbox
from twilio_jobs.pacing.pacer import Pacer
from twilio_jobs.scheduler import Scheduler
from twilio_jobs.settings import get_settings
from worker.handlers import Runtime
from worker.liveness import StallWatch
from worker.twilio_gateway import TwilioGateway
from worker.webhooks import WebhookRuntime, http_client

log = logging.getLogger("twilio_jobs.webhooks")

if TYPE_CHECKING:
    from worker.fastpath import FastPath

_lock = threading.Lock()
_runtime: Runtime | None = None
_scheduler: Scheduler | None = None
_webhooks: WebhookRuntime | None = None
_webhook_scheduler: Scheduler | None = None
_fast_path: FastPath | None = None


def redis_client() -> Redis:
    settings = get_settings()
    return Redis.from_url(
        settings.store_url,
        decode_responses=True,
        max_connections=settings.worker_concurrency + 16,
        health_check_interval=10,
        socket_keepalive=True,
    )


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                settings = get_settings()
                if settings.secret_key is None:
                    raise RuntimeError("TWILIO_JOBS_SECRET_KEY is required")
                from worker.tasks import notify

                redis = redis_client()
                _runtime = Runtime(
                    settings=settings,
                    ledger=Ledger(redis, settings.result_ttl),
                    gateway=TwilioGateway(
                        settings.twilio_api_base_url,
                        pool_size=settings.http_pool_size,
                        connect_timeout=settings.connect_timeout,
                        read_timeout=settings.read_timeout,
                    ),
                    cipher=Cipher(settings.secret_key.get_secret_value()),
                    notify=notify,
                    pacer=Pacer(redis, settings),
                    gates=Gates(redis),
                )
                _runtime.gateway.warm()
    return _runtime


def webhook_runtime() -> WebhookRuntime:
    global _webhooks
    if _webhooks is None:
        with _lock:
            if _webhooks is None:
                from worker.tasks import publish_webhooks

                settings = get_settings()
                if settings.webhook_secret is None:
                    log.warning("TWILIO_JOBS_WEBHOOK_SECRET is not set: webhooks are unsigned")
                _webhooks = WebhookRuntime(
                    settings=settings,
                    outbox=Outbox(redis_client(), settings, publish_webhooks),
                    http=http_client(settings),
                )
    return _webhooks


def fast_path() -> FastPath:
    global _fast_path
    if _fast_path is None:
        rt = runtime()
        with _lock:
            if _fast_path is None:
                from worker.fastpath import FastPath

                _fast_path = FastPath(rt)
    return _fast_path


def start_scheduler() -> None:
    global _scheduler, _webhook_scheduler
    from worker.tasks import publish, publish_webhooks

    def release(job_ids: Sequence[str]) -> None:
        publish(job_ids)

    settings = get_settings()
    _scheduler = Scheduler(redis_client(), release, interval=settings.scheduler_interval)
    _scheduler.start()
    _webhook_scheduler = Scheduler(
        redis_client(),
        publish_webhooks,
        interval=settings.scheduler_interval,
        key=keys.WEBHOOK_SCHEDULE,
        lock=keys.WEBHOOK_SCHEDULER_LOCK,
    )
    _webhook_scheduler.start()
    queue = settings.queue if settings.broker.startswith(("redis", "valkey")) else None
    watch.append(StallWatch(redis_client(), queue, stall_after=settings.stall_after))
    watch[0].start()


def stop_scheduler() -> None:
    for w in watch:
        w.shutting_down()
    for scheduler in (_scheduler, _webhook_scheduler):
        if scheduler is not None:
            scheduler.stop()
    if _fast_path is not None:
        _fast_path.close()


watch: list[StallWatch] = []
"""This process's stall watch, once the worker is ready (a list: set once, read by tasks)."""
