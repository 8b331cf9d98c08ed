"""A worker checks a job's send window when it claims it and again after pacing (fakeredis +
the real Lua scripts, a controllable clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest

from tests.unit.test_handlers import PARAMS, SECRET, Clock, FakeGateway
from twilio_jobs import keys
from twilio_jobs.crypto import Cipher
from twilio_jobs.ledger import Ledger
from twilio_jobs.pacing.lane import Grant
from twilio_jobs.schemas import JobKind, JobStatus
from twilio_jobs.settings import Settings
from twilio_jobs.store import JobStore
from twilio_jobs.windows import SendWindow, Window
from worker import handlers
from worker.handlers import Runtime, run_job

# 09:00 to 17:00 UTC; the clock starts at 2027-01-15 08:00 UTC (a Friday).
WINDOW = Window.of(SendWindow(start="09:00", end="17:00", timezone="UTC"), ("UTC",))
EIGHT = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()
NINE = EIGHT + 3600
SEVENTEEN = EIGHT + 9 * 3600


class StubPacer:
    def __init__(self) -> None:
        self.released: list[tuple[str, ...]] = []

    def release(self, lane: Any, leases: tuple[str, ...]) -> None:
        self.released.append(leases)


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = EIGHT
    return clock


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def rt(redis: Any, gateway: FakeGateway, clock: Clock) -> Runtime:
    settings = Settings(_env_file=None, redis_url="redis://unused", secret_key=SECRET)  # type: ignore[call-arg]
    return Runtime(
        settings=settings,
        ledger=Ledger(redis, settings.result_ttl),
        gateway=gateway,  # type: ignore[arg-type]
        cipher=Cipher(SECRET),
        clock=clock,
    )


def new_job(redis: Any, job_id: str = "job1") -> str:
    store = JobStore(redis, 3600)
    fields = store.new_job_fields(
        JobKind.sendSms,
        PARAMS,
        "AC" + "0" * 32,
        Cipher(SECRET).encrypt("secret-token"),
        status=JobStatus.queued,
    )
    fields["window"] = WINDOW.dumps()
    pipe = redis.pipeline()
    store.write(pipe, job_id, fields)
    pipe.execute()
    return job_id


def test_claimed_before_its_window_it_waits_scheduled_for_the_opening(
    rt: Runtime, redis: Any, gateway: FakeGateway, clock: Clock
) -> None:
    job = new_job(redis)
    assert run_job(job, rt) == "deferred"
    fields = redis.hgetall(keys.job(job))
    assert fields["status"] == "scheduled" and fields["attempts"] == "0"
    assert "ledger" not in fields and "lease" not in fields
    assert redis.zscore(keys.SCHEDULE, job) == NINE
    assert gateway.creates == []
    # A second delivery before then is early and changes nothing.
    assert run_job(job, rt) == "early"
    clock.now = NINE
    assert run_job(job, rt) == "succeeded"
    assert len(gateway.creates) == 1


def test_paced_past_the_windows_end_it_waits_for_the_next_window(
    rt: Runtime, redis: Any, gateway: FakeGateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pacer = StubPacer()
    rt.pacer = pacer  # type: ignore[assignment]
    clock.now = SEVENTEEN - 0.5

    def slow_turn(pacer: Any, lane: Any, rt: Runtime) -> Grant:
        clock.now = SEVENTEEN + 0.5  # the turn came after the window closed
        return Grant(leases=("lease1",), starts=(0.0,))

    monkeypatch.setattr(handlers, "wait_turn", slow_turn)
    job = new_job(redis)
    assert run_job(job, rt) == "deferred"
    assert pacer.released == [("lease1",)]
    assert gateway.creates == []
    fields = redis.hgetall(keys.job(job))
    assert fields["status"] == "scheduled"
    # The next window opens tomorrow at 09:00 (every day, by default).
    assert redis.zscore(keys.SCHEDULE, job) == NINE + 24 * 3600


def test_without_a_window_nothing_changes(rt: Runtime, redis: Any, gateway: FakeGateway) -> None:
    job = new_job(redis)
    redis.hdel(keys.job(job), "window")
    assert run_job(job, rt) == "succeeded"
