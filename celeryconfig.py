"""The Celery configuration, made from the one settings object that the caller passes in.

The worker's Celery app (`worker.app`) is configured with `celery_config(settings)`; a custom
Celery app that should consume our queues the same way can do the same. Nothing here is read at
import time: no settings are global.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from twilio_jobs.dispatch import broker_url, queue_names, task_routes, transport_options
from twilio_jobs.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    queue, webhook_queue = queue_names(settings)
    return {
        "broker_url": (
            broker_url(settings) if settings.redis_url or settings.broker_url else "memory://"
        ),
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_transport_options": transport_options(settings),
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_default_queue": queue,
        "task_routes": task_routes(settings),
        # A worker started without -Q consumes every queue listed here (webhooks included),
        # each with its own exchange and key (see twilio_jobs.dispatch.queue_names).
        "task_queues": tuple(
            Queue(name, Exchange(name), routing_key=name)  # type: ignore[no-untyped-call]
            for name in (queue, webhook_queue)
        ),
        "task_create_missing_queues": True,
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        "worker_prefetch_multiplier": 4,
        # Pacing is global, in Redis (DESIGN.md); Celery's per-worker rate limits stay off,
        # which also spares the consumer a token-bucket check per message.
        "worker_disable_rate_limits": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }
