"""The stall watch: when a worker counts as stalled, and when an outage does not count."""

from __future__ import annotations

import fakeredis

from twilio_jobs import keys
from worker.liveness import StallWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(queue: str | None = "twilio_jobs") -> tuple[StallWatch, fakeredis.FakeRedis, Clock]:
    redis = fakeredis.FakeRedis(decode_responses=True)
    clock = Clock()
    return StallWatch(redis, queue, stall_after=10, clock=clock), redis, clock


def test_not_stalled_while_starting_or_idle_with_nothing_to_do() -> None:
    watch, redis, clock = make()
    redis.zadd(keys.SCHEDULE, {"job": 900.0})
    assert watch.stalled() is None  # grace period after start
    clock.now += 20
    redis.delete(keys.SCHEDULE)
    assert watch.stalled() is None


def test_overdue_schedule_is_a_stall() -> None:
    watch, redis, clock = make()
    clock.now += 20
    redis.zadd(keys.SCHEDULE, {"job": clock.now - 5})
    assert watch.stalled() is None
    redis.zadd(keys.SCHEDULE, {"job": clock.now - 11})
    assert "overdue" in (watch.stalled() or "")


def test_backlog_without_progress_is_a_stall() -> None:
    watch, redis, clock = make()
    redis.lpush("twilio_jobs", "message")
    clock.now += 20
    assert "queued" in (watch.stalled() or "")
    watch.task_started()
    clock.now += 20
    assert watch.stalled() is None  # busy (e.g. waiting for pacing), not stalled
    watch.task_finished()
    assert watch.stalled() is None
    clock.now += 11
    assert "queued" in (watch.stalled() or "")
    assert make(queue=None)[0].stalled() is None  # RabbitMQ: no queue length to read


def test_hung_shutdown_is_a_stall() -> None:
    watch, redis, clock = make()
    watch.shutting_down()
    clock.now += 5
    assert watch.stalled() is None
    clock.now += 6
    assert "shutdown" in (watch.stalled() or "")


def test_an_outage_is_not_a_stall() -> None:
    import redis

    clock = Clock()
    down = redis.Redis(port=1, socket_connect_timeout=0.2)
    watch = StallWatch(down, "twilio_jobs", stall_after=10, clock=clock)
    clock.now += 20
    assert watch.stalled() is None
