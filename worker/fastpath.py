"""The campaign fast path: a chunk of job ids per Celery task, sent concurrently on asyncio.

A Celery task costs about as much CPU as the Twilio call it wraps, and a thread per request
costs three times the CPU of a coroutine (twilio-python on requests vs. on aiohttp, measured),
so campaign traffic comes as `twilio_jobs.send_batch` tasks of ~100 ids and one event loop per
worker process sends them. Every job still has its own record, ledger claim, pacing slot,
retries and outcome, through the same functions as the single path (`worker.handlers`):
- claims of concurrent jobs are coalesced into one pipelined round trip;
- each pacing lane has one pump that asks Redis for as many slots as it has waiters (and
  hands back finished leases in the same call), so waiting jobs do not poll;
- what is not a plain send (reconciliation, a missing token, a job handed back to the
  scheduler) and every outcome is written by the synchronous handlers, on a small thread pool.
`batch_window` bounds the jobs a process has claimed and not finished.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis

from twilio_jobs import connections, keys, tracing
from twilio_jobs.ledger import Claim
from twilio_jobs.pacing.pacer import Grant, Lane, Pacer
from twilio_jobs.pacing.wait import FIRST_STEP
from twilio_jobs.schemas import JobKind
from twilio_jobs.status_callbacks import with_status_callback
from twilio_jobs.store import now_iso
from twilio_jobs.twilio.api import AsyncTwilioApi
from worker import metrics
from worker.errors import SendError
from worker.handlers import (
    Runtime,
    defer,
    defer_if_closed,
    finish,
    hand_back,
    queued_for,
    reconcile_claimed,
    run_claimed,
    span_attrs,
    succeed_many,
    window_closed,
)
from worker.transport import AioTransport

log = logging.getLogger("twilio_jobs.fastpath")

T = TypeVar("T")

# What a send waiting for a pacing slot gets when its worker stops: no slot, back to the
# scheduler at once (an unsent job must not sit under a lease while its worker goes away).
STOPPING = Grant(reason="stopping")

# Successes are written together from this long after the first of them: a request's pacing
# slot is handed back before its outcome is written, so this costs no throughput, and with
# sends ending one by one a pass of the loop would otherwise settle one job at a time.
SETTLE_GATHER = 0.002
# A pump woken by a slot this process just freed, on a full account, asks again this long
# after: the slots that free meanwhile come back in the same acquire (fewer round trips, and
# sends leave in groups whose claims and outcomes are written together; measured: 0.68 vs
# 1.13 worker CPU-ms per single send, 844 vs 863 campaign jobs/s). The account is shared
# between processes by the acquire script itself (`tj_inflight_share`), not by this wait.
FREED_GATHER = 0.002


class ClaimBatcher:
    """Claims asked for in the same loop iteration go to Redis as one pipeline."""

    def __init__(self, fast: FastPath) -> None:
        self.fast = fast
        self.pending: list[tuple[str, asyncio.Future[Claim]]] = []

    def claim(self, job_id: str) -> asyncio.Future[Claim]:
        future: asyncio.Future[Claim] = self.fast.loop.create_future()
        if not self.pending:
            self.fast.loop.call_soon(self._flush)
        self.pending.append((job_id, future))
        return future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        rt = self.fast.rt

        def claim_all() -> list[Claim]:
            now = rt.clock()
            ids = [job_id for job_id, _ in batch]
            return rt.ledger.claim_many(ids, now, rt.lease_seconds, now_iso(now))

        async def run() -> None:
            try:
                claims = await self.fast.in_thread(claim_all)
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                for _, future in batch:
                    future.set_exception(exc)
                return
            for (_, future), claim in zip(batch, claims, strict=True):
                future.set_result(claim)

        self.fast.spawn(run())


class SettleBatcher:
    """The successes of a loop pass written in one pipelined round trip, on one thread hop
    (`handlers.succeed_many`); every other outcome goes through `handlers.finish` alone."""

    def __init__(self, fast: FastPath) -> None:
        self.fast = fast
        self.pending: list[tuple[str, Claim, dict[str, Any], asyncio.Future[str]]] = []

    def succeed(self, job_id: str, claim: Claim, resource: dict[str, Any]) -> asyncio.Future[str]:
        future: asyncio.Future[str] = self.fast.loop.create_future()
        if not self.pending:
            self.fast.loop.call_later(SETTLE_GATHER, self._flush)
        self.pending.append((job_id, claim, resource, future))
        return future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        rt = self.fast.rt

        def settle_all() -> list[str]:
            for _, claim, resource, _ in batch:
                metrics.record_send(claim.kind, resource)
            return succeed_many(
                [(job_id, claim, resource) for job_id, claim, resource, _ in batch], rt
            )

        async def run() -> None:
            try:
                results = await self.fast.in_thread(settle_all)
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                for *_, future in batch:
                    future.set_exception(exc)
                return
            for (*_, future), result in zip(batch, results, strict=True):
                future.set_result(result)

        self.fast.spawn(run())


class LanePump:
    """The one asker for pacing slots on a lane in this process."""

    def __init__(self, fast: FastPath, lane: Lane) -> None:
        self.fast = fast
        self.lane = lane
        self.waiters: collections.deque[tuple[asyncio.Future[Grant], float]] = collections.deque()
        self.releases: list[str] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def turn(self) -> asyncio.Future[Grant]:
        future: asyncio.Future[Grant] = self.fast.loop.create_future()
        if self.fast.stopping:
            future.set_result(STOPPING)
            return future
        self.waiters.append((future, time.monotonic()))
        self._kick()
        return future

    def stop_waiting(self) -> None:
        """The worker stops: every waiter goes back to the scheduler now (`hand_back`)."""
        while self.waiters:
            future, _ = self.waiters.popleft()
            if not future.done():
                future.set_result(STOPPING)

    def release(self, leases: Sequence[str]) -> None:
        self.releases.extend(leases)
        self._kick()

    def _kick(self) -> None:
        self.wake.set()
        if self.task is None or self.task.done():
            self.task = self.fast.loop.create_task(self._run())

    async def _run(self) -> None:
        pacer, policy = self.fast.pacer, self.fast.rt.wait_policy(holds_thread=False)
        while self.waiters or self.releases:
            self.wake.clear()
            release, self.releases = self.releases, []
            if not self.waiters:
                try:
                    await pacer.arelease(self.lane.account, release)
                except (redis.ConnectionError, redis.TimeoutError):
                    # Kept for the next try; a slot never handed back ends with its lease.
                    self.releases[:0] = release
                    await asyncio.sleep(0.5)
                continue
            try:
                grant = await pacer.aacquire(self.lane, None, len(self.waiters), release)
            except Exception as exc:  # noqa: BLE001 - the waiters fail, the pump goes on
                self.releases.extend(release)
                while self.waiters:
                    self.waiters.popleft()[0].set_exception(exc)
                continue
            if grant.leases:
                for lease, start in zip(grant.leases, grant.starts, strict=True):
                    future = self.waiters.popleft()[0] if self.waiters else None
                    if future is None or future.done():  # cancelled, or sent back (stopping)
                        self.releases.append(lease)
                    else:
                        future.set_result(Grant((lease,), (start,)))
                continue
            # Nobody here can start now: the wait policy says, per waiter (oldest first), wait
            # or go back to the scheduler at its place in line (the grant without leases).
            now, wait = time.monotonic(), None
            while self.waiters:
                wait = policy.next_wait(grant, now - self.waiters[0][1], FIRST_STEP)
                if wait is not None:
                    break
                self.waiters.popleft()[0].set_result(grant)
            if self.waiters and wait is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=wait)
                if self.wake.is_set() and grant.reason == "inflight":
                    await asyncio.sleep(FREED_GATHER)
        if self.fast.pumps.get(self.lane) is self:
            del self.fast.pumps[self.lane]  # lanes come and go with campaigns


class FastPath:
    """One per worker process: an event loop on its own thread and what lives on it."""

    def __init__(self, rt: Runtime) -> None:
        assert rt.pacer is not None and rt.gates is not None
        self.rt = rt
        # Outcomes are written here, and what is not a plain send (a reconciliation) runs here
        # whole: single sends through the bulk consumer bring more of those than campaigns.
        threads = max(8, rt.settings.worker_concurrency // 2)
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="twilio-jobs-fast")
        self.loop = _new_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="twilio-jobs-fastpath", daemon=True
        )
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._setup(), self.loop).result()

    async def _setup(self) -> None:
        s = self.rt.settings
        self.gateway = AsyncTwilioApi(
            AioTransport(s.http_pool_size or s.batch_window, s.connect_timeout, s.read_timeout), s
        )
        self.redis = connections.async_redis_client(
            s.store_url, decode_responses=True, max_connections=64, health_check_interval=10
        )
        holder = self.rt.pacer.holder if self.rt.pacer is not None else ""
        self.pacer = Pacer(self.redis, s, holder=f"{holder}:fast" if holder else "")
        self.window = asyncio.Semaphore(s.batch_window)
        self.claims = ClaimBatcher(self)
        self.settles = SettleBatcher(self)
        self.pumps: dict[Lane, LanePump] = {}

    def send_batch(self, job_ids: Sequence[str]) -> dict[str, int]:
        """Run a chunk to the end; called from a Celery thread, which waits for it."""
        return asyncio.run_coroutine_threadsafe(self._batch(job_ids), self.loop).result()

    async def _batch(self, job_ids: Sequence[str]) -> dict[str, int]:
        outcomes = await asyncio.gather(*(self.job(j) for j in job_ids), return_exceptions=True)
        tally: dict[str, int] = collections.Counter()
        for outcome in outcomes:
            if isinstance(outcome, redis.ConnectionError | redis.TimeoutError):
                raise outcome  # the task leaves the whole chunk with the broker
        for job_id, outcome in zip(job_ids, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # The job's message is acked with the batch: put it where it is picked up again.
                log.warning("job %s: %s; re-queued", job_id, type(outcome).__name__)
                await self.in_thread(self._requeue, job_id)
                outcome = "error"
            tally[str(outcome)] += 1
        return dict(tally)

    async def job(self, job_id: str, sending: Callable[[], None] | None = None) -> str:
        """Move one job as far as it can go now (`handlers.run_job` on this loop). `sending` is
        called once its request to Twilio is about to go out (the bulk consumer counts the jobs
        still waiting for a claim or a pacing slot)."""
        rt = self.rt
        async with self.window:
            claim = await self.claims.claim(job_id)
            token = self._token(claim.cred) if claim.mode in ("send", "reconcile") else ""
            if not token:
                return await self.in_thread(run_claimed, job_id, claim, rt)
            with tracing.span(
                "twilio_jobs.send",
                parent=claim.trace,
                kind="consumer",
                attributes=span_attrs(job_id, claim),
            ):
                if claim.mode == "reconcile":
                    # The look at Twilio on a thread; a send it calls for waits for its turn
                    # here, with the others (a thread would lose every race for a slot).
                    done, claim = await self.in_thread(reconcile_claimed, job_id, claim, token, rt)
                    if done is not None:
                        return done
                return await self._send(job_id, claim, token, sending)

    async def _send(
        self, job_id: str, claim: Claim, token: str, sending: Callable[[], None] | None = None
    ) -> str:
        """Wait for pacing, create, record the outcome."""
        rt = self.rt
        if claim.window:
            deferred = await self.in_thread(defer_if_closed, job_id, claim, rt)
            if deferred:
                return deferred
        kind = JobKind(claim.kind)
        params = with_status_callback(claim.params or {}, job_id, rt.settings, rt.cipher, kind)
        lane = Lane.of(kind, claim.account_sid, params, claim.campaign_id, rt.settings)
        pump = self.pumps.get(lane)
        if pump is None:
            pump = self.pumps[lane] = LanePump(self, lane)
        waited = time.monotonic()
        grant = await pump.turn()
        metrics.PACING_WAIT.labels("batch").observe(time.monotonic() - waited)
        if not grant.leases:
            return await self.in_thread(hand_back, job_id, claim, rt, lane, grant)
        # Paced past the window's end: wait for the next window rather than send late.
        opens = window_closed(claim, rt.clock()) if claim.window else None
        if opens is not None:
            pump.release(grant.leases)
            return await self.in_thread(defer, job_id, claim, rt, opens)
        queued_for(claim, rt.clock())
        if sending is not None:
            sending()
        if grant.starts[0] > 0:
            await asyncio.sleep(grant.starts[0])
        outcome: dict[str, Any] | SendError
        try:
            outcome = await self.gateway.create(kind, claim.account_sid, token, params)
        except SendError as exc:
            outcome = exc
        finally:
            pump.release(grant.leases)
        if isinstance(outcome, SendError):
            return await self.in_thread(finish, job_id, claim, rt, outcome)
        return await self.settles.succeed(job_id, claim, outcome)

    def stop_waiting(self) -> None:
        """On the loop: from now on, sends that would wait for pacing go back to the
        scheduler instead (the bulk consumer's warm shutdown)."""
        self.stopping = True
        for pump in list(self.pumps.values()):
            pump.stop_waiting()

    def _token(self, cred: str) -> str:
        """The plaintext token ("" when it cannot be had: the synchronous path fails the job).
        A campaign's jobs share one ciphertext, which the cipher decrypts once."""
        if not cred:
            return ""
        try:
            return self.rt.cipher.decrypt(cred)
        except ValueError:
            return ""

    def _requeue(self, job_id: str) -> None:
        self.rt.ledger.redis.zadd(keys.SCHEDULE, {job_id: self.rt.clock() + 1.0}, nx=True)

    def in_thread(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        return self.loop.run_in_executor(self.executor, fn, *args)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro, loop=self.loop)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        async def shutdown() -> None:
            await self.gateway.close()
            await self.redis.aclose()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.executor.shutdown(wait=False)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
