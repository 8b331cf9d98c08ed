"""Orphan recovery by heartbeat: what a dead worker had taken is handed out again in seconds.

Each worker process beats every second into a sorted set (`keys.WORKERS`, Redis server time)
under its own id and, on a Redis broker, under an id of each broker channel that consumes
(`<process id>/<n>`). What an id has taken is recorded where it is taken:

- a send-ledger lease: the claim script writes the job's `leaseHolder` and adds the job to the
  process's claims set (`keys.worker_claims`);
- a task message on a Redis broker: the channel adds its delivery tag to its tags set
  (`keys.worker_tags`) in the same round trip as kombu's `unacked` entry (worker/broker.py).

Every process also reaps: an id whose beat is older than `TWILIO_JOBS_WORKER_DEAD_AFTER` is
dead. Its leases end now and their jobs are published again at the head of the queue where
the broker can (`lua/reap_claims.lua`, `Dispatcher.send_first`; the schedule's watchdog entry
at the old lease end stays as a net), and its unacked task messages go back to the head of
their queue (`restore_tags`): they are older than anything queued since. A channel
closed by a broker reconnect stops beating too, so the messages it had prefetched come back
the same way while its process lives on. The ledger makes every spare delivery harmless.

A process reaps only after it has itself beaten without a gap for `dead_after` seconds: after a
Redis outage, or a pause of its own, the others get that long to beat again before anyone is
judged by a beat written before the outage.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable

import redis
from redis import Redis

from twilio_jobs import keys, scripts

log = logging.getLogger("twilio_jobs.heartbeat")

REAP_BATCH = 100


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Heartbeat:
    def __init__(
        self,
        dead_after: float = 10.0,
        worker_id: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = worker_id or new_worker_id()
        self.dead_after = dead_after
        self.interval = min(1.0, dead_after / 10)
        self.monotonic = monotonic
        self.store: Redis | None = None
        self.broker: Redis | None = None
        # Puts a dead channel's unacked task messages back in their queues; returns how many.
        self.restore_tags: Callable[[str], int] | None = None
        # Publishes send tasks for job ids, at the head of the queue where the broker can.
        self.hand_out: Callable[[list[str]], None] = lambda job_ids: None
        self._channels: set[str] = set()
        self._numbers = itertools.count(1)
        self._finished: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_beat: float | None = None
        self._beating_since: float | None = None
        self._failed = False

    # -- what this process holds

    def add_channel(self) -> str:
        """A new id for a broker channel that consumes; it beats until `drop_channel`."""
        channel_id = f"{self.id}/{next(self._numbers)}"
        with self._lock:
            self._channels.add(channel_id)
        return channel_id

    def drop_channel(self, channel_id: str) -> None:
        with self._lock:
            self._channels.discard(channel_id)

    def finished(self, job_ids: Iterable[str]) -> None:
        """Tasks over these jobs are done: drop them from the claims set at the next beat."""
        with self._lock:
            self._finished.extend(job_ids)

    # -- the loop

    def start(
        self,
        store: Redis,
        hand_out: Callable[[list[str]], None],
        broker: Redis | None = None,
        restore_tags: Callable[[str], int] | None = None,
    ) -> None:
        self.attach(store, hand_out, broker, restore_tags)
        log.info("worker heartbeat id %s", self.id)
        for target, name in ((self.run, "heartbeat"), (self.run_reaper, "reaper")):
            threading.Thread(target=target, name=f"twilio-jobs-{name}", daemon=True).start()

    def attach(
        self,
        store: Redis,
        hand_out: Callable[[list[str]], None],
        broker: Redis | None = None,
        restore_tags: Callable[[str], int] | None = None,
    ) -> None:
        """The clients and callbacks, without the thread (`start`)."""
        self.store = store
        self.hand_out = hand_out
        self.broker = broker
        self.restore_tags = restore_tags
        self._beat_store = scripts.register(store, "heartbeat")
        self._reap_store = scripts.register(store, "reap")
        self._reap_claims = scripts.register(store, "reap_claims")
        if broker is not None:
            self._beat_broker = scripts.register(broker, "heartbeat")
            self._reap_broker = scripts.register(broker, "reap")

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Beat, and nothing else: a slow recovery must never hold up this process's beat
        (the others would take it for dead)."""
        while True:
            try:
                self.beat()
            except (redis.RedisError, OSError) as exc:
                if not self._failed:
                    log.warning("heartbeat: Redis unavailable (%s)", type(exc).__name__)
                self._failed = True
                self._beating_since = None
            except Exception:
                log.exception("heartbeat: beat failed; retrying")
            if self._stop.wait(self.interval):
                return

    def run_reaper(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.may_reap():
                continue
            try:
                self.reap()
            except (redis.RedisError, OSError) as exc:
                log.warning("heartbeat: recovery interrupted (%s); retrying", type(exc).__name__)
            except Exception:
                log.exception("heartbeat: recovery failed; retrying")

    def beat(self) -> None:
        assert self.store is not None
        with self._lock:
            channels = sorted(self._channels)
            finished, self._finished = self._finished, []
        try:
            if self.broker is None:
                self._beat_store(keys=[keys.WORKERS], args=[self.id, *channels])
            else:
                self._beat_store(keys=[keys.WORKERS], args=[self.id])
                if channels:
                    self._beat_broker(keys=[keys.WORKERS], args=channels)
            if finished:
                self.store.srem(keys.worker_claims(self.id), *finished)
        except BaseException:
            with self._lock:
                self._finished[:0] = finished
            raise
        now = self.monotonic()
        if self._beating_since is None or (
            self._last_beat is not None and now - self._last_beat > self.dead_after / 2
        ):
            # Just (re)connected, or this process paused: give the others `dead_after` to beat
            # again. A fresh process that never failed needs no such wait.
            grace = self.dead_after if self._failed else 2 * self.interval
            self._beating_since = now - self.dead_after + grace
        if self._failed:
            log.warning("heartbeat: Redis answers again")
            self._failed = False
        self._last_beat = now

    def may_reap(self) -> bool:
        since, last = self._beating_since, self._last_beat
        now = self.monotonic()
        return (
            since is not None
            and last is not None
            and now - since >= self.dead_after
            and now - last <= self.dead_after / 2  # this process is beating now
        )

    def reap(self) -> int:
        """Hand out again what dead workers had taken; returns how many ids were reaped."""
        assert self.store is not None
        own = self.id
        reaped = 0
        sources = [(self.store, self._reap_store)]
        if self.broker is not None:
            sources.append((self.broker, self._reap_broker))
        for client, take in sources:
            dead = [str(x) for x in take(keys=[keys.WORKERS], args=[self.dead_after, REAP_BATCH])]
            for worker_id in dead:
                if worker_id == own:
                    continue
                jobs = [
                    str(x)
                    for x in self._reap_claims(
                        keys=[keys.worker_claims(worker_id)], args=[worker_id, repr(time.time())]
                    )
                ]
                if jobs:
                    self.hand_out(jobs)
                messages = self.restore_tags(worker_id) if self.restore_tags else 0
                client.zrem(keys.WORKERS, worker_id)
                reaped += 1
                if jobs or messages:
                    log.warning(
                        "worker %s stopped beating: %d claimed jobs and %d task messages "
                        "handed out again",
                        worker_id,
                        len(jobs),
                        messages,
                    )
        return reaped
