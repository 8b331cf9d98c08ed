"""The bulk consumer: single sends taken from a Redis broker by the dozen and run as coroutines.

A Celery task per single send costs a thread, kombu's per-message bookkeeping and a blocking
twilio-python request: about as much CPU as the request itself (docs/benchmarks.md).
`twilio-jobs worker` passes `--bulk-sends`; on a Redis broker with the threads pool (its
defaults) the consumer bootstep `BulkSends` then takes the send queue from Celery's consumer
and hands it to a `BulkConsumer` on the process's event loop (worker/fastpath.py), which

- takes up to `TAKE_MAX` task messages in one step (`lua/take_many.lua`), each recorded as
  unacked and in a tags set of its own id exactly as a Celery channel's take records one
  (worker/broker.py): should the process die, orphan recovery (twilio_jobs.heartbeat) puts them
  back at the head of the queue;
- runs each job (a `send` message's one, a `send_batch` message's hundred) through
  `FastPath.job`: the ledger claim, record, pacing, retries and outcome of the Celery task,
  with claims coalesced, a pacing pump per lane and aiohttp;
- acks a message once every job in it has its outcome written (late ack), the acks of a loop
  pass in one round trip;
- holds at most `batch_window` jobs, of which at most the worker's concurrency are still waiting
  for a claim or a pacing slot: a process never hoards what another one could send now.

A job that meets a store error is tried again in place (its message stays unacked); one that
fails otherwise goes back on the schedule, as a batch job does. A warm shutdown takes nothing
more, hands the jobs still waiting for a pacing slot back to the scheduler (unclaimed, as a
long pacing wait does), lets the sends under way finish for `SHUTDOWN_GRACE` seconds and puts
the messages of whatever is left back at the head of the queue.

Webhook tasks stay with Celery's consumer; RabbitMQ, Sentinel brokers, other pools and
`celery -A worker worker` without the flag keep a Celery task per message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import bootsteps

from twilio_jobs import connections, keys, scripts
from twilio_jobs.dispatch import SEND_BATCH_TASK, SEND_TASK, queue_names
from twilio_jobs.heartbeat import Heartbeat
from worker import metrics
from worker.fastpath import FastPath
from worker.liveness import StallWatch

log = logging.getLogger("twilio_jobs.worker")

TAKE_MAX = 50
PEEK_TIMEOUT = 1  # seconds (BLMOVE takes whole seconds in redis-py's types)
SHUTDOWN_GRACE = 10.0
STORE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
TASKS = {SEND_TASK: "send", SEND_BATCH_TASK: "send_batch"}


class BulkConsumer:
    def __init__(
        self,
        fast: FastPath,
        *,
        broker_url: str,
        queue: str,
        lists: list[str],
        unacked: tuple[str, str],
        passed_on: str,
        heartbeat: Heartbeat,
        restore: Callable[[str], int],
        watch: StallWatch,
        concurrency: int,
    ) -> None:
        self.fast = fast
        self.broker_url = broker_url
        self.queue = queue  # the list peeked at while every list is empty
        self.lists = lists  # the send queue's lists (one per priority), in the order to take
        self.unacked, self.unacked_index = unacked
        self.passed_on = passed_on  # where a message for another task goes (Celery runs it)
        self.heartbeat = heartbeat
        self.restore = restore
        self.watch = watch
        self.window = fast.rt.settings.batch_window
        self.concurrency = concurrency
        self.held = 0  # jobs taken and not finished
        self.waiting = 0  # of those, jobs not yet sending
        self.stopping = False
        self.id = ""
        self._acks: list[str] = []
        self._acking: asyncio.Task[None] | None = None
        self._taker: asyncio.Task[None] | None = None
        self._stopped = False

    # -- from Celery's threads

    def start(self) -> None:
        self.id = self.heartbeat.add_channel()
        asyncio.run_coroutine_threadsafe(self._start(), self.fast.loop).result(timeout=30)
        log.info("bulk consumer on: queue %s, id %s", self.queue, self.id)

    def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Take nothing more, finish what is in flight for up to `grace` seconds, put the
        rest back at the head of the queue. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        future = asyncio.run_coroutine_threadsafe(self._stop(grace), self.fast.loop)
        try:
            future.result(timeout=grace + 15)
        except Exception:  # noqa: BLE001 - orphan recovery restores what is left
            log.exception("bulk consumer: stop failed; its messages come back once its id lapses")
        finally:
            self.heartbeat.drop_channel(self.id)

    # -- on the loop

    async def _start(self) -> None:
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.redis = connections.async_redis_client(
            self.broker_url,
            decode_responses=True,
            max_connections=4,
            health_check_interval=10,
            socket_keepalive=True,
        )
        self.take = scripts.register(self.redis, "take_many")
        self.tags = keys.worker_tags(self.id)
        self._taker = self.fast.loop.create_task(self._run())

    def _room(self) -> int:
        return min(TAKE_MAX, self.window - self.held, self.concurrency - self.waiting)

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await self._take_loop()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; taking goes on
                log.exception("bulk consumer: take loop failed; starting it again")
                await asyncio.sleep(1.0)

    async def _take_loop(self) -> None:
        failures = 0
        take_keys = [self.unacked, self.unacked_index, self.tags, keys.WORKERS, *self.lists]
        while not self.stopping:
            room = self._room()
            if room <= 0:
                self.wake.clear()
                await self.wake.wait()
                continue
            try:
                items = await self.take(keys=take_keys, args=[repr(time.time()), self.id, room])
                if not items:
                    # A blocking peek (the list is left as it was): back as soon as one comes.
                    await self.redis.blmove(self.queue, self.queue, PEEK_TIMEOUT, "RIGHT", "RIGHT")
                    continue
            except STORE_ERRORS as exc:
                failures += 1
                if failures == 1:
                    log.warning("bulk consumer: broker unavailable (%s)", type(exc).__name__)
                await asyncio.sleep(min(2.0, 0.1 * 2**failures))
                continue
            except redis.ResponseError as exc:  # e.g. out of memory: nothing was taken
                log.warning("bulk consumer: take refused by Redis (%s)", exc)
                await asyncio.sleep(1.0)
                continue
            if failures:
                log.warning("bulk consumer: broker answers again")
                failures = 0
            for item in items:
                self._begin(item)

    def _begin(self, raw: str) -> None:
        try:
            message = json.loads(raw)
            tag = message["properties"]["delivery_tag"]
            task = message["headers"]["task"]
            args = json.loads(base64.b64decode(message["body"]))[0]
        except (ValueError, KeyError, IndexError, TypeError):
            log.error("bulk consumer: a message it cannot read goes to Celery's consumer")
            self.fast.spawn(self._pass_on(raw, None))
            return
        ids = args[0] if task == SEND_BATCH_TASK and args else args[:1]
        if (
            task not in TASKS
            or not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str) for i in ids)
        ):
            self.fast.spawn(self._pass_on(raw, tag))
            return
        self.held += len(ids)
        self.waiting += len(ids)
        self.fast.spawn(self._message(tag, TASKS[task], ids))

    async def _message(self, tag: str, task: str, job_ids: list[str]) -> None:
        results = await asyncio.gather(*(self._job(job_id) for job_id in job_ids))
        if None in results:
            return  # stopped on a store error: the message stays unacked, and is restored
        self._ack(tag)
        for result in results:
            metrics.BULK_JOBS.labels(task, result).inc()

    async def _job(self, job_id: str) -> str | None:
        sent = False

        def sending() -> None:
            nonlocal sent
            if not sent:
                sent = True
                self.waiting -= 1
                self.wake.set()

        self.watch.task_started()
        delay = 0.2
        try:
            while True:
                try:
                    await self.fast.job(job_id, sending)
                    return "done"
                except STORE_ERRORS as exc:
                    if self.stopping:
                        return None
                    log.warning("job %s: job store unavailable (%s)", job_id, type(exc).__name__)
                except Exception as exc:  # noqa: BLE001 - the job goes back on the schedule
                    log.warning("job %s: %s; re-queued", job_id, type(exc).__name__)
                    try:
                        await self.fast.in_thread(self.fast._requeue, job_id)
                        return "requeued"
                    except STORE_ERRORS:
                        if self.stopping:
                            return None
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        finally:
            sending()
            self.held -= 1
            self.watch.task_finished()
            self.heartbeat.finished([job_id])
            self.wake.set()
            if self.held == 0:
                self.idle.set()

    async def _pass_on(self, raw: str, tag: str | None) -> None:
        """A message for another task (or none Celery could read either): to the head of a queue
        Celery's consumer takes from, acked here in the same transaction."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.rpush(self.passed_on, raw)
        if tag is not None:
            self._forget(pipe, [tag])
        await pipe.execute()

    def _forget(self, pipe: Any, tags: list[str]) -> None:
        pipe.zrem(self.unacked_index, *tags)
        pipe.hdel(self.unacked, *tags)
        pipe.srem(self.tags, *tags)

    def _ack(self, tag: str) -> None:
        self._acks.append(tag)
        if self._acking is None or self._acking.done():
            self._acking = self.fast.loop.create_task(self._flush_acks())

    async def _flush_acks(self) -> None:
        await asyncio.sleep(0)  # the acks of this loop pass together
        while self._acks:
            tags, self._acks = self._acks, []
            pipe = self.redis.pipeline(transaction=False)
            self._forget(pipe, tags)
            try:
                await pipe.execute()
            except STORE_ERRORS:
                # Unacked is safe: restored later, the ledger finds these jobs final.
                self._acks[:0] = tags
                if self.stopping:
                    return
                await asyncio.sleep(0.5)

    async def _stop(self, grace: float) -> None:
        self.stopping = True
        if self._taker is not None:
            self._taker.cancel()
            await asyncio.gather(self._taker, return_exceptions=True)
        # Jobs waiting for a pacing slot go back to the scheduler, unclaimed; those already
        # sending get `grace` seconds to finish.
        self.fast.stop_waiting()
        if self.held:
            log.info("bulk consumer: stopping; %d jobs in flight", self.held)
            self.idle.clear()
            try:
                await asyncio.wait_for(self.idle.wait(), timeout=grace)
            except TimeoutError:
                log.warning("bulk consumer: %d jobs still in flight; put back", self.held)
        if self._acking is not None:
            await asyncio.gather(self._acking, return_exceptions=True)
        await self._flush_acks()
        restored = await self.fast.in_thread(self.restore, self.id)
        if restored:
            log.info("bulk consumer: %d task messages put back at the head of the queue", restored)
        await self.redis.aclose()


class BulkSends(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: the send queue to a `BulkConsumer` when the worker was started with
    `--bulk-sends` (as `twilio-jobs worker` starts it) and it can run; else a log line why not."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, bulk_sends: bool = False, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.wanted = bulk_sends
        self.consumer: BulkConsumer | None = None

    def start(self, c: Any) -> None:
        if not self.wanted:
            return
        if self.consumer is None:
            reason = self.why_not(c)
            if reason:
                log.info("bulk consumer off: %s", reason)
                self.wanted = False
                return
            self.consumer = self.create_consumer(c)
            self.consumer.start()
        # Each (re)start of Celery's consumer: the send queue is ours, not its.
        c.cancel_task_queue(self.consumer.queue)

    def why_not(self, c: Any) -> str | None:
        app = c.app
        queue, _ = queue_names(app.settings)
        consumed = set(app.amqp.queues.consume_from)
        if not app.settings.bulk_consumer:
            return "TWILIO_JOBS_BULK_CONSUMER is off"
        if app.conf.broker_transport is None:
            return "the broker is not a plain redis:// URL"
        if "thread" not in type(c.pool).__module__:
            return "the pool is not threads"
        if queue not in consumed:
            return f"this worker does not consume {queue}"
        if not consumed - {queue}:
            return f"this worker consumes no queue besides {queue}"
        return None

    def create_consumer(self, c: Any) -> BulkConsumer:
        from worker.broker import tags_restorer

        app = c.app
        channel = c.connection.default_channel
        queue, webhooks = queue_names(app.settings)
        consumed = set(app.amqp.queues.consume_from)
        root = app.root
        consumer = root.bulk = BulkConsumer(
            root.fast_path,
            broker_url=app.settings.broker,
            queue=queue,
            lists=[channel._q_for_pri(queue, pri) for pri in channel.priority_steps],
            unacked=(channel.unacked_key, channel.unacked_index_key),
            passed_on=webhooks if webhooks in consumed else sorted(consumed - {queue})[0],
            heartbeat=app.heartbeat,
            restore=tags_restorer(app.connection_for_write),
            watch=root.watch,
            concurrency=int(
                getattr(c.controller, "concurrency", 0) or app.settings.worker_concurrency
            ),
        )
        return consumer

    def stop(self, c: Any) -> None:
        from celery.worker import state

        # Also called when Celery's consumer restarts after a broker reconnect: this consumer
        # reconnects by itself, and stops only with the worker.
        if self.consumer is not None and (state.should_stop is not None or state.should_terminate):
            self.consumer.stop()

    def shutdown(self, c: Any) -> None:
        if self.consumer is not None:
            self.consumer.stop()
