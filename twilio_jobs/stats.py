"""What the service is doing, read from Redis at once: the numbers behind `GET /metrics` and
the dashboard's overview. Each comes from where the truth is kept (DESIGN.md):

- jobs per state, and moves into each final state ever: the stats hash that the one lifecycle
  function keeps with every move (`tj_move`, `keys.STATS`);
- task messages waiting per queue, and the age of the oldest: the broker;
- jobs waiting in the schedule (sendAt, backoff, pacing hand-backs, watchdog entries) and how
  many of them are overdue (a scheduler falling behind);
- failed webhook deliveries; the AIMD in-flight limit of each account a 429 has cut.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis import Redis

from twilio_jobs import keys
from twilio_jobs.dispatch import Dispatcher
from twilio_jobs.lifecycle import FINAL_STATES, JobStatus
from twilio_jobs.pacing.inflight import current_limit
from twilio_jobs.settings import Settings

MAX_ACCOUNTS = 100
"""Accounts shown with their AIMD state (a label each): the first ones, sorted."""


@dataclass
class Snapshot:
    jobs: dict[str, int] = field(default_factory=dict)  # non-final states: jobs in it now
    ended: dict[str, int] = field(default_factory=dict)  # final states: moves into it ever
    queues: dict[str, int] = field(default_factory=dict)
    oldest_queued_age: float | None = None
    schedule: int = 0
    schedule_overdue: int = 0
    webhooks_failed: int = 0
    in_flight: dict[str, dict[str, Any]] = field(default_factory=dict)
    worker_restarts: int = 0
    workers_alive: int = 0
    campaigns_running: int = 0


def workers_alive(redis: Redis, dead_after: float, now: float | None = None) -> int:
    """Worker processes whose heartbeat (`twilio_jobs.heartbeat`) is fresher than
    `TWILIO_JOBS_WORKER_DEAD_AFTER` (broker channels, `<process>/<n>`, are not counted)."""
    now = time.time() if now is None else now
    ids = redis.zrangebyscore(keys.WORKERS, now - dead_after, "+inf")
    return sum(1 for worker in ids if "/" not in str(worker))


def read(redis: Redis, dispatcher: Dispatcher, settings: Settings) -> Snapshot:
    now = time.time()
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.STATS)
    pipe.zcard(keys.SCHEDULE)
    pipe.zcount(keys.SCHEDULE, "-inf", now - 1.0)
    pipe.zcard(keys.WEBHOOKS_FAILED)
    pipe.smembers(keys.AIMD_ACCOUNTS)
    pipe.scard(keys.CAMPAIGNS_RUNNING)
    raw, schedule, overdue, failed, accounts, running = pipe.execute()
    snap = Snapshot(schedule=int(schedule), schedule_overdue=int(overdue))
    snap.webhooks_failed = int(failed)
    snap.campaigns_running = int(running)
    for status in JobStatus:
        if status in FINAL_STATES:
            snap.ended[status.value] = int(raw.get(f"ended:{status.value}", 0))
        else:
            snap.jobs[status.value] = max(0, int(raw.get(f"status:{status.value}", 0)))
    snap.worker_restarts = int(raw.get("worker_restarts", 0))
    snap.workers_alive = workers_alive(redis, settings.worker_dead_after, now)
    for account in sorted(str(a) for a in accounts)[:MAX_ACCOUNTS]:
        snap.in_flight[account] = current_limit(redis, account, settings, now)
    snap.queues = dispatcher.depths()
    oldest = dispatcher.oldest()
    if oldest is None and dispatcher.messages is not None:
        snap.oldest_queued_age = 0.0  # the send queue is empty
    if oldest is not None:
        stamp = redis.hget(keys.job(oldest), "updatedAt")
        if stamp:
            moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            snap.oldest_queued_age = max(0.0, now - moment.timestamp())
    return snap


__all__ = ["MAX_ACCOUNTS", "Snapshot", "read"]
