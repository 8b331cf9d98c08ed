"""The worker's composition root: every collaborator of the tasks, built once from the settings
when the worker starts, and stopped when it stops. Nothing here is a module-level singleton:
the Celery app (`worker.app`) owns the one `Root` of its process."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from redis import Redis

from twilio_jobs import connections, keys, tracing
from twilio_jobs.crypto import Cipher
from twilio_jobs.dispatch import Dispatcher
from twilio_jobs.gates import Gates
from twilio_jobs.ledger import Ledger
from twilio_jobs.outbox import Outbox
from twilio_jobs.pacing.pacer import Pacer
from twilio_jobs.scheduler import Scheduler
from twilio_jobs.settings import Settings
from twilio_jobs.twilio.api import TwilioApi
from worker import metrics
from worker.fastpath import FastPath
from worker.handlers import Runtime
from worker.liveness import StallWatch
from worker.transport import HttpTransport
from worker.webhooks import WebhookRuntime, http_client

if TYPE_CHECKING:
    from worker.consumer import BulkConsumer

log = logging.getLogger("twilio_jobs.worker")


class Root:
    def __init__(self, settings: Settings, worker_id: str = "") -> None:
        if settings.secret_key is None:
            raise RuntimeError("TWILIO_JOBS_SECRET_KEY is required")
        if settings.webhook_secret is None:
            log.warning("TWILIO_JOBS_WEBHOOK_SECRET is not set: webhooks are unsigned")
        self.settings = settings
        tracing.configure_from_env("twilio-jobs-worker")
        # Task messages go out through the same dispatcher as the producer's (by task name).
        self.dispatcher = Dispatcher(settings)
        redis = self.redis()
        self.outbox = outbox = Outbox(redis, settings, self.dispatcher.send_webhooks)
        self.runtime = Runtime(
            settings=settings,
            ledger=Ledger(
                redis,
                settings.result_ttl,
                holder=worker_id,
                replicas=connections.ClaimReplicas(redis, settings.store_min_replicas),
            ),
            gateway=TwilioApi(
                HttpTransport(
                    settings.http_pool_size or settings.worker_concurrency,
                    settings.connect_timeout,
                    settings.read_timeout,
                ),
                settings,
            ),
            cipher=Cipher.of(settings.secret_keys),
            pacer=Pacer(redis, settings, holder=worker_id),
            gates=Gates(redis),
        )
        self.webhooks = WebhookRuntime(settings=settings, outbox=outbox, http=http_client(settings))
        self.schedulers = [
            Scheduler(self.redis(), self.dispatcher.send, interval=settings.scheduler_interval),
            Scheduler(
                self.redis(),
                self.dispatcher.send_webhooks,
                interval=settings.scheduler_interval,
                key=keys.WEBHOOK_SCHEDULE,
                lock=keys.WEBHOOK_SCHEDULER_LOCK,
            ),
        ]
        queue = settings.queue if connections.is_redis(settings.broker) else None
        self.watch = StallWatch(self.redis(), queue, stall_after=settings.stall_after)
        self._fast_path: FastPath | None = None
        self.bulk: BulkConsumer | None = None  # set by worker.consumer.BulkSends
        self._lock = threading.Lock()

    def redis(self) -> Redis:
        settings = self.settings
        return connections.redis_client(
            settings.store_url,
            decode_responses=True,
            max_connections=settings.worker_concurrency + 16,
            health_check_interval=10,
            socket_keepalive=True,
        )

    @property
    def fast_path(self) -> FastPath:
        """The campaign fast path's event loop, started by the first batch."""
        if self._fast_path is None:
            with self._lock:
                if self._fast_path is None:
                    self._fast_path = FastPath(self.runtime)
        return self._fast_path

    def start(self) -> None:
        metrics.serve(self.settings.metrics_port)
        for scheduler in self.schedulers:
            scheduler.start()
        self.watch.start()

    def stop(self) -> None:
        self.watch.shutting_down()
        for scheduler in self.schedulers:
            scheduler.stop()
        if self.bulk is not None:
            self.bulk.stop()
        if self._fast_path is not None:
            self._fast_path.close()
        self.dispatcher.close()
        self.runtime.gateway.close()
