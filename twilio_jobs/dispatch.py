"""Hands job ids to the Celery broker by task name, so the producer needs no worker code.

With a Redis broker (the default) a task message is written the way kombu's Redis transport
writes it: one LPUSH of Celery's protocol-2 message onto the queue's list. When the broker is
the job store's Redis, that LPUSH joins the pipeline that writes the job record, so a job costs
one round trip and its record and message appear together. Any other broker (RabbitMQ, a
kombu key prefix) goes through Celery's `send_task`.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from redis import Redis

from twilio_jobs.settings import Settings

SEND_TASK = "twilio_jobs.send"
WEBHOOK_TASK = "twilio_jobs.webhook"
SEND_BATCH_TASK = "twilio_jobs.send_batch"
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def celery_app(settings: Settings) -> Celery:
    """A Celery app with celeryconfig's settings, pointed at this settings object's broker."""
    app = Celery("twilio_jobs", set_as_current=False)
    app.config_from_object("celeryconfig")
    app.conf.broker_url = settings.broker
    return app


class TaskMessages:
    """Celery protocol-2 task messages in kombu's Redis envelope, byte for byte as `send_task`
    makes them for a task with one positional argument and no options (rendered from a
    template: json.dumps per message cost more than the rest of the enqueue)."""

    def __init__(self, task: str, queue: str) -> None:
        self.task = task
        self.queue = queue
        origin = f"gen{os.getpid()}@{socket.gethostname()}"
        envelope = {
            "body": "@BODY@",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": task,
                "id": "@ID@",
                "shadow": None,
                "eta": None,
                "expires": None,
                "group": None,
                "group_index": None,
                "retries": 0,
                "timelimit": [None, None],
                "root_id": "@ID@",
                "parent_id": None,
                "argsrepr": "@ARGSREPR@",
                "kwargsrepr": "{}",
                "origin": origin,
                "ignore_result": None,
                "replaced_task_nesting": 0,
                "stamped_headers": None,
                "stamps": {},
            },
            "properties": {
                "correlation_id": "@ID@",
                "reply_to": str(uuid.uuid4()),
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": "@TAG@",
            },
        }
        self._template = (
            json.dumps(envelope)
            .replace("%", "%%")
            .replace('"@BODY@"', '"%(body)s"')
            .replace('"@ID@"', '"%(id)s"')
            .replace('"@ARGSREPR@"', "%(argsrepr)s")
            .replace('"@TAG@"', '"%(tag)s"')
        )

    def encode(self, arg: str) -> str:
        body = json.dumps([[arg], {}, _EMBED]).encode()
        return self._template % {
            "body": base64.b64encode(body).decode(),
            "id": uuid.uuid4(),
            "argsrepr": json.dumps(repr([arg])),
            "tag": uuid.uuid4(),
        }


_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class Dispatcher:
    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.queue = settings.queue
        self.webhook_queue = f"{settings.queue}.webhooks"
        self._settings = settings
        self._app = app
        self._broker: Redis | None = None
        direct = app is None and urlsplit(settings.broker).scheme in REDIS_SCHEMES
        if direct:
            from celeryconfig import broker_transport_options

            # Our LPUSH mirrors kombu's Redis transport as celeryconfig sets it up: no key
            # prefix. Anything else is kombu's to write.
            direct = not broker_transport_options.get("global_keyprefix")
        self.messages = TaskMessages(SEND_TASK, self.queue) if direct else None
        self.shares_store = direct and settings.broker == settings.redis_url

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = celery_app(self._settings)
        return self._app

    def queue_in(self, pipe: Any, job_ids: Sequence[str]) -> bool:
        """Add the task messages to `pipe`, a pipeline on the job store, when the broker is
        that same Redis. False: nothing was added; call `send` after the pipeline ran."""
        if not self.shares_store or self.messages is None or not job_ids:
            return False
        pipe.lpush(self.queue, *[self.messages.encode(job_id) for job_id in job_ids])
        return True

    def send(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        if not ids:
            return
        if self.messages is not None:
            if self._broker is None:
                self._broker = Redis.from_url(self._settings.broker, health_check_interval=10)
            self._broker.lpush(self.queue, *[self.messages.encode(job_id) for job_id in ids])
            return
        app = self.app
        with app.producer_or_acquire() as producer:
            for job_id in ids:
                app.send_task(SEND_TASK, args=[job_id], queue=self.queue, producer=producer)

    def send_webhooks(self, delivery_ids: Iterable[str]) -> None:
        with self.app.producer_or_acquire() as producer:
            for delivery_id in delivery_ids:
                self.app.send_task(
                    WEBHOOK_TASK, args=[delivery_id], queue=self.webhook_queue, producer=producer
                )

    def send_batches(self, job_ids: Sequence[str], size: int) -> None:
        """Campaign traffic: chunks of ids, each sent concurrently by one worker."""
        with self.app.producer_or_acquire() as producer:
            for start in range(0, len(job_ids), size):
                chunk = list(job_ids[start : start + size])
                self.app.send_task(
                    SEND_BATCH_TASK, args=[chunk], queue=self.queue, producer=producer
                )

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
        if self._app is not None:
            self._app.close()
