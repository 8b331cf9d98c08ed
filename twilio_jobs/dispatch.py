"""Hands job ids to the Celery broker by task name, so neither the producer nor this package
needs Celery or any worker code.

With a Redis broker (the default) a task message is written the way kombu's Redis transport
writes it: one LPUSH of Celery's protocol-2 message onto the queue's list. When the broker is
the job store's Redis, that LPUSH joins the pipeline that writes the job record, so a job costs
one round trip and its record and message appear together. Any other broker (RabbitMQ) gets the
same protocol-2 message through kombu, to the queue's own exchange, as Celery's `send_task`
publishes it.

The broker's layout (queue names, their exchanges, transport options) is defined here once, for
the producers here and for the worker's Celery configuration (`celeryconfig`).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from redis import Redis

from twilio_jobs import connections
from twilio_jobs.settings import Settings

SEND_TASK = "twilio_jobs.send"
WEBHOOK_TASK = "twilio_jobs.webhook"
SEND_BATCH_TASK = "twilio_jobs.send_batch"
PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 1}
"""Celery's default `task_publish_retry_policy`."""


def queue_names(settings: Settings) -> tuple[str, str]:
    """The send queue and the webhook queue. Each has an exchange of its own name, bound with
    its own name as the key (as Celery's task_create_missing_queues would make them): queues
    sharing a binding would each get a copy of every message."""
    return settings.queue, f"{settings.queue}.webhooks"


def task_routes(settings: Settings) -> dict[str, dict[str, str]]:
    sends, webhooks = queue_names(settings)
    return {
        SEND_TASK: {"queue": sends},
        SEND_BATCH_TASK: {"queue": sends},
        WEBHOOK_TASK: {"queue": webhooks},
    }


def broker_url(settings: Settings) -> str:
    """The broker URL as kombu takes it (a Sentinel URL becomes kombu's `sentinel://` form,
    its master name in `transport_options`)."""
    return connections.kombu_broker(settings.broker)[0]


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu's transport options for the broker, producers and workers alike. No key prefix:
    the Redis LPUSH below writes where kombu's Redis transport reads without one."""
    return {
        # A task unacked this long is handed to another worker. Our tasks never wait long (no
        # long ETAs: sendAt and backoff live in the schedule set), so this only bounds how soon
        # a job held by a killed worker is picked up again; the send ledger makes the
        # redelivery safe.
        "visibility_timeout": settings.visibility_timeout,
        # kombu's default of 10 starves acks at high concurrency.
        "max_connections": max(20, settings.worker_concurrency * 2),
        "socket_keepalive": True,
        "health_check_interval": 10,
        # A Sentinel broker's master name (none before a broker is configured at all).
        **connections.kombu_broker(settings.broker_url or settings.redis_url or "")[1],
    }


class TaskMessages:
    """Celery protocol-2 task messages in kombu's Redis envelope, byte for byte as `send_task`
    makes them for a task with one positional argument and no options (rendered from a
    template: json.dumps per message cost more than the rest of the enqueue)."""

    def __init__(self, task: str, queue: str) -> None:
        self.task = task
        self.queue = queue
        origin = _origin()
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

    def encode(self, arg: Any) -> str:
        body = json.dumps([[arg], {}, _EMBED]).encode()
        return self._template % {
            "body": base64.b64encode(body).decode(),
            "id": uuid.uuid4(),
            "argsrepr": json.dumps(_argsrepr(arg)),
            "tag": uuid.uuid4(),
        }


_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ARGSREPR_MAX = 1024
"""Celery's `argsrepr_maxsize`: the header is for people reading logs, not for the worker."""


def _argsrepr(arg: Any) -> str:
    text = repr([arg])
    return text if len(text) <= ARGSREPR_MAX else text[: ARGSREPR_MAX - 3] + "..."


def _origin() -> str:
    return f"gen{os.getpid()}@{socket.gethostname()}"


class KombuPublisher:
    """Celery protocol-2 task messages through kombu (any broker kombu speaks), as Celery's
    `send_task` publishes them: to the queue's exchange, declared once per channel."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        from kombu.connection import Connection

        self.connection = Connection(url, transport_options=options)  # type: ignore[no-untyped-call]
        self._queues: dict[str, Any] = {}

    def _queue(self, name: str) -> Any:
        from kombu.entity import Exchange, Queue

        queue = self._queues.get(name)
        if queue is None:
            exchange = Exchange(name)  # type: ignore[no-untyped-call]
            queue = self._queues[name] = Queue(name, exchange, routing_key=name)  # type: ignore[no-untyped-call]
        return queue

    def publish(self, task: str, queue: str, args: Iterable[Any]) -> None:
        from kombu import pools

        target = self._queue(queue)
        origin = _origin()
        reply_to = str(uuid.uuid4())
        with pools.producers[self.connection].acquire(block=True) as producer:
            for arg in args:
                task_id = str(uuid.uuid4())
                headers: dict[str, Any] = {
                    "lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None,
                    "expires": None, "group": None, "group_index": None, "retries": 0,
                    "timelimit": [None, None], "root_id": task_id, "parent_id": None,
                    "argsrepr": _argsrepr(arg), "kwargsrepr": "{}", "origin": origin,
                    "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None,
                    "stamps": {},
                }  # fmt: skip
                producer.publish(
                    [[arg], {}, _EMBED],
                    exchange=target.exchange,
                    routing_key=queue,
                    serializer="json",
                    headers=headers,
                    correlation_id=task_id,
                    reply_to=reply_to,
                    delivery_mode=2,
                    declare=[target],
                    retry=True,
                    retry_policy=PUBLISH_RETRY,
                )

    def close(self) -> None:
        self.connection.release()  # type: ignore[no-untyped-call]


class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self.queue, self.webhook_queue = queue_names(settings)
        self._settings = settings
        self._broker: Redis | None = None
        self._kombu: KombuPublisher | None = None
        self._lock = threading.Lock()
        direct = connections.is_redis(settings.broker)
        self.messages = TaskMessages(SEND_TASK, self.queue) if direct else None
        self._webhook_messages = TaskMessages(WEBHOOK_TASK, self.webhook_queue) if direct else None
        self._batch_messages = TaskMessages(SEND_BATCH_TASK, self.queue) if direct else None
        self.shares_store = direct and settings.broker == settings.redis_url

    def queue_in(self, pipe: Any, job_ids: Sequence[str]) -> bool:
        """Add the task messages to `pipe`, a pipeline on the job store, when the broker is
        that same Redis. False: nothing was added; call `send` after the pipeline ran."""
        if not self.shares_store or self.messages is None or not job_ids:
            return False
        pipe.lpush(self.queue, *[self.messages.encode(job_id) for job_id in job_ids])
        return True

    def _publish(
        self, messages: TaskMessages | None, task: str, queue: str, args: list[Any]
    ) -> None:
        if not args:
            return
        if messages is not None:
            self._redis().lpush(queue, *[messages.encode(arg) for arg in args])
            return
        self._publisher().publish(task, queue, args)

    def _redis(self) -> Redis:
        with self._lock:
            if self._broker is None:
                self._broker = connections.redis_client(
                    self._settings.broker, health_check_interval=10
                )
            return self._broker

    def _publisher(self) -> KombuPublisher:
        with self._lock:
            if self._kombu is None:
                options = transport_options(self._settings)
                self._kombu = KombuPublisher(broker_url(self._settings), options)
            return self._kombu

    def send(self, job_ids: Iterable[str]) -> None:
        self._publish(self.messages, SEND_TASK, self.queue, list(job_ids))

    def send_first(self, job_ids: Iterable[str]) -> None:
        """`send`, but ahead of everything queued where the broker can (a Redis list's
        consuming end); for work a dead worker had taken, which is older than the queue."""
        ids = list(job_ids)
        if self.messages is None or not ids:
            self.send(ids)
            return
        self._redis().rpush(self.queue, *[self.messages.encode(job_id) for job_id in ids])

    def send_webhooks(self, delivery_ids: Iterable[str]) -> None:
        self._publish(self._webhook_messages, WEBHOOK_TASK, self.webhook_queue, list(delivery_ids))

    def send_batches(self, job_ids: Sequence[str], size: int) -> None:
        """Campaign traffic: chunks of ids, each sent concurrently by one worker."""
        chunks = [list(job_ids[start : start + size]) for start in range(0, len(job_ids), size)]
        self._publish(self._batch_messages, SEND_BATCH_TASK, self.queue, chunks)

    def depths(self) -> dict[str, int]:
        """Task messages waiting in each queue (the broker's count; none while it is down)."""
        names = (self.queue, self.webhook_queue)
        if self.messages is not None:
            pipe = self._redis().pipeline(transaction=False)
            for name in names:
                pipe.llen(name)
            return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))
        publisher = self._publisher()
        with self._lock:
            channel = publisher.connection.default_channel
            return {
                name: int(channel.queue_declare(queue=name, passive=True).message_count)  # type: ignore[no-untyped-call]
                for name in names
            }

    def oldest(self) -> str | None:
        """The job id of the oldest task message in the send queue (the Redis broker only:
        kombu reads a list from its right end), or None."""
        if self.messages is None:
            return None
        raw = self._redis().lindex(self.queue, -1)
        if raw is None:
            return None
        try:
            body = json.loads(base64.b64decode(json.loads(raw)["body"]))
            arg = body[0][0]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        return arg if isinstance(arg, str) else None

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
        if self._kombu is not None:
            self._kombu.close()
