"""Stall detection: a worker that stopped doing its job exits so its supervisor restarts it.

Celery's consumer can stay connected-but-idle after the Redis broker restarts (celery#8091,
#8030; kombu raises "'NoneType' object has no attribute 'hostname'" while closing a channel
whose connection is gone), and the scheduler's publish can hang on a dead connection. Losing a
worker is safe here (acks_late, the ledger, the schedule's watchdog entries), so the cure is a
restart: `twilio-jobs worker` (and docker-compose's restart policy) brings a fresh process up.

Stalled means, while Redis answers: a schedule entry overdue by more than `stall_after`
seconds (no scheduler in any worker is releasing work), or tasks waiting in this worker's
broker queue while it runs none and has started none for `stall_after` seconds (a worker busy
with tasks that wait for pacing is not stalled).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import redis
from redis import Redis

from twilio_jobs import keys
from twilio_jobs.errors import WORKER_STALLED_EXIT

log = logging.getLogger("twilio_jobs.liveness")


def _exit_for_restart() -> None:
    logging.shutdown()
    os._exit(WORKER_STALLED_EXIT)


class StallWatch:
    def __init__(
        self,
        redis_client: Redis,
        queue: str | None,
        stall_after: float = 60.0,
        interval: float = 5.0,
        on_stall: Callable[[], None] = _exit_for_restart,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis_client
        self.queue = queue
        self.stall_after = stall_after
        self.interval = interval
        self.on_stall = on_stall
        self.clock = clock
        self.started = clock()
        self.last_progress = self.started
        self.shutdown_at: float | None = None
        self.active = 0
        self._lock = threading.Lock()

    def task_started(self) -> None:
        with self._lock:
            self.active += 1
            self.last_progress = self.clock()

    def task_finished(self) -> None:
        with self._lock:
            self.active = max(0, self.active - 1)
            self.last_progress = self.clock()

    def shutting_down(self) -> None:
        """Celery began to stop. It can hang there (after kombu's 'Unrecoverable error');
        past `stall_after` the watch ends the process."""
        self.shutdown_at = self.clock()

    def stalled(self) -> str | None:
        """Why this worker counts as stalled now, or None."""
        now = self.clock()
        if self.shutdown_at is not None and now - self.shutdown_at > self.stall_after:
            return f"shutdown still not done after {self.stall_after:.0f}s"
        if now - self.started < self.stall_after:
            return None
        try:
            overdue = self.redis.zrangebyscore(
                keys.SCHEDULE, "-inf", now - self.stall_after, start=0, num=1
            )
            backlog = int(self.redis.llen(self.queue)) if self.queue else 0
        except (redis.RedisError, OSError):
            return None  # an outage, not a stall: wait for Redis
        if overdue:
            return f"schedule entries overdue by more than {self.stall_after:.0f}s"
        idle = self.active == 0 and now - self.last_progress > self.stall_after
        if backlog and idle:
            return f"{backlog} tasks queued but none started for {self.stall_after:.0f}s"
        return None

    def run(self) -> None:
        strikes = 0
        while True:
            time.sleep(self.interval)
            reason = self.stalled()
            strikes = strikes + 1 if reason else 0
            if reason and strikes >= 2:
                log.critical("worker stalled (%s); exiting so that it is restarted", reason)
                self.on_stall()
                return

    def start(self) -> None:
        threading.Thread(target=self.run, name="twilio-jobs-liveness", daemon=True).start()
