"""Releases due jobs (sendAt, retry backoff, reconciliation) from the schedule sorted set.

Every worker process runs the loop; a Redis lock keeps one of them active at a time. A job id
is published first and removed from the set after, so a crash in between re-publishes it
(harmless: the ledger lets one delivery through) rather than losing it. A second instance
releases result webhook deliveries from their own set (`key`, `lock`).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence

import redis
from redis import Redis

from twilio_jobs import keys, scripts

log = logging.getLogger("twilio_jobs.scheduler")


class Scheduler:
    def __init__(
        self,
        redis_client: Redis,
        publish: Callable[[Sequence[str]], None],
        interval: float = 0.2,
        batch: int = 1000,
        key: str = keys.SCHEDULE,
        lock: str = keys.SCHEDULER_LOCK,
    ) -> None:
        self.redis = redis_client
        self.key = key
        self.lock = lock
        self.publish = publish
        self.interval = interval
        self.batch = batch
        self.token = secrets.token_hex(8)
        self._released = scripts.register(redis_client, "release")
        self._lock = scripts.register(redis_client, "scheduler_lock")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float | None = None) -> int:
        """Publish what is due; returns how many jobs were released."""
        now = time.time() if now is None else now
        lease_ms = int(max(2.0, self.interval * 10) * 1000)
        if not self._lock(keys=[self.lock], args=[self.token, lease_ms]):
            return 0
        due = self.redis.zrangebyscore(self.key, "-inf", now, start=0, num=self.batch)
        if not due:
            return 0
        ids = [str(x) for x in due]
        self.publish(ids)
        return int(self._released(keys=[self.key], args=[repr(now), *ids]))

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                released = self.tick()
            except (redis.RedisError, OSError) as exc:
                log.warning("scheduler: job store unavailable (%s); retrying", type(exc).__name__)
                released = 0
                self._stop.wait(1.0)
            except Exception:
                log.exception("scheduler: publishing due jobs failed; retrying")
                released = 0
                self._stop.wait(1.0)
            if released < self.batch:
                self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="twilio-jobs-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
