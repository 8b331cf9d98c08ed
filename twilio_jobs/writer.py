"""Coalesced job writes for an event loop (the HTTP API's send routes).

Each accepted job needs its record written and its task message pushed. Done one request at a
time, redis-py's per-call machinery cost more CPU than the rest of the route (docs/
benchmarks.md). Here every job that arrives while a write is in flight joins the next one: one
call of `lua/enqueue_jobs.lua` (all records, indexes and stats, one LPUSH of all messages) per
round trip, however many requests are waiting. A request is answered only after its batch was
written; a failed batch fails each of its requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

from twilio_jobs import connections, keys, scripts
from twilio_jobs.dispatch import Dispatcher
from twilio_jobs.errors import REPLICAS_SHORT, ServiceUnavailable
from twilio_jobs.store import JobStore

MAX_BATCH = 256
ENQUEUE = scripts.source("enqueue_jobs")
ENQUEUE_SHA = hashlib.sha1(ENQUEUE.encode()).hexdigest()


class JobWriter:
    def __init__(
        self,
        redis: AsyncRedis,
        store: JobStore,
        dispatcher: Dispatcher,
        requeue_after: float,
        *,
        min_replicas: int = 0,
    ) -> None:
        self.redis = redis
        self.min_replicas = min_replicas
        self.store = store
        self.dispatcher = dispatcher
        self.requeue_after = requeue_after
        self._pending: list[tuple[str, Mapping[str, str], str, asyncio.Future[None]]] = []
        self._flushing = False

    async def write(self, job_id: str, fields: Mapping[str, str], digest: str = "") -> None:
        """Write the record, index it (`digest`: its recipient's, twilio_jobs.search) and queue
        the task message of one job (broker = job store)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((job_id, fields, digest, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                entries = [
                    (job_id, fields.get("owner", ""), fields["status"], digest)
                    for job_id, fields, digest, _ in batch
                ]
                try:
                    await self._write(batch)
                    if self.min_replicas:
                        await self._replicated(entries)
                except BaseException as exc:  # handed to every waiting request
                    for _, _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, _, _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._flushing = False

    async def _write(self, batch: list[tuple[str, Mapping[str, str], str, Any]]) -> None:
        """One call of `lua/enqueue_jobs.lua` for the batch: records, watchdog entries,
        indexes, stats and (unless replicas are awaited first) the task messages."""
        messages = self.dispatcher.messages if self.dispatcher.shares_store else None
        queue = messages is not None and not self.min_replicas
        args: list[Any] = [
            self.store.ttl,
            f"{time.time():.3f}",
            repr(time.time() + self.requeue_after),  # the watchdog, see Client.submit
        ]
        for job_id, fields, digest, _ in batch:
            args += (
                job_id,
                digest,
                messages.encode(job_id) if queue and messages is not None else "",
                len(fields),
            )
            for item in fields.items():
                args += item
        names = (keys.SCHEDULE, self.dispatcher.queue)
        try:
            await self.redis.evalsha(ENQUEUE_SHA, 2, *names, *args)
        except NoScriptError:  # not run at all: sent whole, which loads it again
            await self.redis.eval(ENQUEUE, 2, *names, *args)

    async def _replicated(self, entries: list[tuple[str, str, str, str]]) -> None:
        """TWILIO_JOBS_STORE_MIN_REPLICAS: one WAIT for the whole batch, then its task messages
        (see Client._replicated). Short of it, the batch's jobs (which no worker can have yet)
        are taken back (`JobStore.forget`) and their requests get a 503."""
        pipe = self.redis.pipeline(transaction=False)
        if await connections.areplicas_acked(self.redis, self.min_replicas) < self.min_replicas:
            for job_id, _, _, digest in entries:
                self.store.forget(pipe, job_id, digest)
            await pipe.execute()
            raise ServiceUnavailable(REPLICAS_SHORT)
        self.dispatcher.queue_in(pipe, [job_id for job_id, _, _, _ in entries])
        await pipe.execute()
