"""run_job without Celery: the ledger's decisions, retries, reconciliation (fakeredis + Lua)."""

from __future__ import annotations

import json
from typing import Any

import fakeredis
import pytest
import redis as redis_lib

from tests.conftest import require_redis
from twilio_jobs import keys, scripts
from twilio_jobs.crypto import Cipher
from twilio_jobs.errors import AmbiguousError, PermanentError, RetryableError, SendError
from twilio_jobs.ledger import Ledger
from twilio_jobs.scheduler import Scheduler
from twilio_jobs.schemas import JobKind, JobStatus
from twilio_jobs.settings import Settings
from twilio_jobs.store import JobStore
from worker.handlers import Runtime, backoff, run_job, succeed_many

SECRET = "unit-test-secret-key-0123456789abcdefgh"
PARAMS = {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}


class FakeGateway:
    """Scripted outcomes for create and find, recording every call."""

    def __init__(self) -> None:
        self.creates: list[dict[str, Any]] = []
        self.create_outcomes: list[SendError | None] = []
        self.find_outcomes: list[dict[str, Any] | SendError | None] = []
        self.finds = 0

    def create(self, kind: JobKind, sid: str, token: str, params: Any) -> dict[str, Any]:
        assert token == "secret-token"
        self.creates.append(dict(params))
        outcome = self.create_outcomes.pop(0) if self.create_outcomes else None
        if outcome is not None:
            raise outcome
        return {"sid": f"SM{len(self.creates):032d}", "status": "queued", **params}

    def find(
        self, kind: JobKind, sid: str, token: str, params: Any, since: float, taken: Any = None
    ) -> Any:
        self.finds += 1
        outcome = self.find_outcomes.pop(0) if self.find_outcomes else None
        if isinstance(outcome, SendError):
            raise outcome
        return outcome


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url="redis://unused",
        secret_key=SECRET,
        max_attempts=3,
        backoff_base=1.0,
        backoff_max=10.0,
        reconcile_delay=2.0,
        reconcile_window=60.0,
    )


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rt(redis: Any, settings: Settings, gateway: FakeGateway, clock: Clock) -> Runtime:
    return Runtime(
        settings=settings,
        ledger=Ledger(redis, settings.result_ttl),
        gateway=gateway,  # type: ignore[arg-type]
        cipher=Cipher(SECRET),
        clock=clock,
        jitter=lambda: 1.0,
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
    pipe = redis.pipeline()
    store.write(pipe, job_id, fields)
    pipe.execute()
    return job_id


def test_success_records_sid_envelope_and_drops_the_token(rt: Runtime, redis: Any) -> None:
    job = new_job(redis)
    assert run_job(job, rt) == "succeeded"
    fields = redis.hgetall(keys.job(job))
    assert fields["status"] == "succeeded" and fields["ledger"] == "sent"
    assert "cred" not in fields
    assert json.loads(fields["result"])["contextWrites"]["to"]["sid"] == fields["twilioSid"]
    assert redis.zscore(keys.SCHEDULE, job) is None  # no watchdog left behind


def test_a_sent_job_is_never_sent_again(rt: Runtime, redis: Any, gateway: FakeGateway) -> None:
    job = new_job(redis)
    run_job(job, rt)
    assert run_job(job, rt) == "final"
    assert len(gateway.creates) == 1


def test_a_live_lease_makes_other_deliveries_wait(rt: Runtime, redis: Any, clock: Clock) -> None:
    job = new_job(redis)
    claim = rt.ledger.claim(job, clock.now, rt.lease_seconds, "t")
    assert claim.mode == "send"
    assert run_job(job, rt) == "busy"
    assert redis.zscore(keys.SCHEDULE, job) == pytest.approx(clock.now + rt.lease_seconds)


def test_an_expired_lease_reconciles_and_adopts(
    rt: Runtime, redis: Any, clock: Clock, gateway: FakeGateway
) -> None:
    job = new_job(redis)
    rt.ledger.claim(job, clock.now, rt.lease_seconds, "t")  # a worker that then died
    clock.now += rt.lease_seconds + 1
    gateway.find_outcomes = [{"sid": "SMfound", "status": "sent"}]
    assert run_job(job, rt) == "succeeded"
    assert gateway.creates == []
    assert redis.hget(keys.job(job), "twilioSid") == "SMfound"


def test_an_expired_lease_with_nothing_found_sends_once(
    rt: Runtime, redis: Any, clock: Clock, gateway: FakeGateway
) -> None:
    job = new_job(redis)
    rt.ledger.claim(job, clock.now, rt.lease_seconds, "t")
    clock.now += rt.lease_seconds + 1
    assert run_job(job, rt) == "succeeded"
    assert len(gateway.creates) == 1
    assert redis.hget(keys.job(job), "attempts") == "2"


def test_permanent_error_fails_at_once(rt: Runtime, redis: Any, gateway: FakeGateway) -> None:
    job = new_job(redis)
    gateway.create_outcomes = [PermanentError("[HTTP 400] Unable to create record: x", status=400)]
    assert run_job(job, rt) == "failed"
    fields = redis.hgetall(keys.job(job))
    assert json.loads(fields["result"]) == {
        "callback": "error",
        "contextWrites": {"to": "[HTTP 400] Unable to create record: x"},
    }
    assert "cred" not in fields and "ledger" not in fields


def test_retryable_error_backs_off_honouring_retry_after(
    rt: Runtime, redis: Any, clock: Clock, gateway: FakeGateway
) -> None:
    job = new_job(redis)
    gateway.create_outcomes = [RetryableError("[HTTP 503] x", status=503, retry_after=7.0)]
    assert run_job(job, rt) == "retrying"
    assert redis.hget(keys.job(job), "status") == "retrying"
    assert redis.zscore(keys.SCHEDULE, job) == pytest.approx(clock.now + 7.0)
    assert run_job(job, rt) == "early"  # a stray delivery before the time does nothing
    clock.now += 7.0
    assert run_job(job, rt) == "succeeded"
    assert redis.hget(keys.job(job), "attempts") == "2"


def test_a_429_does_not_use_up_attempts(
    rt: Runtime, redis: Any, clock: Clock, gateway: FakeGateway
) -> None:
    job = new_job(redis)
    throttled = [RetryableError("[HTTP 429] x", status=429, code=20429) for _ in range(10)]
    gateway.create_outcomes = [
        *throttled,
        RetryableError("[HTTP 429] x", status=429, retry_after=7),
    ]
    for _ in range(10):  # more than max_attempts (3)
        assert run_job(job, rt) == "throttled"
        assert redis.hget(keys.job(job), "status") == "retrying"
        assert redis.hget(keys.job(job), "attempts") == "0"
        clock.now = redis.zscore(keys.SCHEDULE, job)
    assert run_job(job, rt) == "throttled"
    assert redis.zscore(keys.SCHEDULE, job) >= clock.now + 7.0  # Retry-After honoured
    clock.now = redis.zscore(keys.SCHEDULE, job)
    assert run_job(job, rt) == "succeeded"
    assert redis.hget(keys.job(job), "attempts") == "1"
    assert len(gateway.creates) == 12


def test_a_throttled_job_gives_up_after_throttled_give_up(
    rt: Runtime, redis: Any, clock: Clock, gateway: FakeGateway
) -> None:
    job = new_job(redis)
    gateway.create_outcomes = [
        RetryableError("[HTTP 429] Unable to create record: Too Many Requests", status=429)
        for _ in range(1000)
    ]
    started = clock.now
    outcome = run_job(job, rt)
    while outcome == "throttled":
        clock.now = max(redis.zscore(keys.SCHEDULE, job), clock.now)
        outcome = run_job(job, rt)
    assert outcome == "failed"
    assert clock.now - started >= rt.settings.throttled_give_up
    message = json.loads(redis.hget(keys.job(job), "result"))["contextWrites"]["to"]
    assert message.startswith("[HTTP 429] Unable to create record: Too Many Requests")
    assert "gave up" in message


def test_retries_stop_at_max_attempts_with_the_last_error(
    rt: Runtime, redis: Any, clock: Clock, gateway: FakeGateway
) -> None:
    job = new_job(redis)
    gateway.create_outcomes = [RetryableError(f"[HTTP 503] try {n}", status=503) for n in range(3)]
    outcomes = []
    for _ in range(3):
        outcomes.append(run_job(job, rt))
        clock.now += 100
    assert outcomes == ["retrying", "retrying", "failed"]
    assert json.loads(redis.hget(keys.job(job), "result"))["contextWrites"]["to"] == (
        "[HTTP 503] try 2"
    )


def test_ambiguous_error_reconciles_before_any_resend(
    rt: Runtime, redis: Any, clock: Clock, gateway: FakeGateway
) -> None:
    job = new_job(redis)
    gateway.create_outcomes = [AmbiguousError("[HTTP 500] boom", status=500)]
    assert run_job(job, rt) == "unknown"
    assert redis.hget(keys.job(job), "ledger") == "unknown"
    clock.now += 2.0
    gateway.find_outcomes = [{"sid": "SMexisting"}]
    assert run_job(job, rt) == "succeeded"
    assert len(gateway.creates) == 1 and gateway.finds == 1


def test_unknown_outcome_past_the_window_fails_and_a_retry_reconciles(
    rt: Runtime, redis: Any, clock: Clock, gateway: FakeGateway
) -> None:
    job = new_job(redis)
    gateway.create_outcomes = [AmbiguousError("[HTTP 504] timeout", status=504)]
    run_job(job, rt)
    gateway.find_outcomes = [RetryableError("down"), RetryableError("down")]
    clock.now += 2.0
    assert run_job(job, rt) == "unknown"
    clock.now += 100.0
    assert run_job(job, rt) == "failed"
    fields = redis.hgetall(keys.job(job))
    assert "Outcome unknown" in json.loads(fields["result"])["contextWrites"]["to"]
    assert fields["ledger"] == "unknown"
    # A manual retry must look before it sends: the earlier create may exist.
    store = JobStore(redis, 3600)
    assert store.reopen(job, Cipher(SECRET).encrypt("secret-token")) == "ok"
    gateway.find_outcomes = [{"sid": "SMlate"}]
    assert run_job(job, rt) == "succeeded"
    assert len(gateway.creates) == 1
    assert redis.hget(keys.job(job), "twilioSid") == "SMlate"


def test_missing_or_undecryptable_credentials_fail(rt: Runtime, redis: Any) -> None:
    job = new_job(redis)
    redis.hset(keys.job(job), "cred", Cipher("another-secret-key-0123456789abcdefg").encrypt("t"))
    assert run_job(job, rt) == "failed"
    job2 = new_job(redis, "job2")
    redis.hdel(keys.job(job2), "cred")
    assert run_job(job2, rt) == "failed"
    assert json.loads(redis.hget(keys.job(job2), "result"))["contextWrites"]["to"] == (
        "Credentials are required to create a Client"
    )


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert backoff(1, 1.0, 60.0, 1.0) == 1.0
    assert backoff(4, 1.0, 60.0, 1.0) == 8.0
    assert backoff(20, 1.0, 60.0, 1.0) == 60.0
    assert backoff(4, 1.0, 60.0, 0.0) == 4.0


def test_scheduler_releases_due_jobs_once_and_keeps_rescheduled_ones(redis: Any) -> None:
    published: list[str] = []
    scheduler = Scheduler(redis, published.extend)
    redis.zadd(keys.SCHEDULE, {"a": 100.0, "b": 200.0, "c": 300.0})
    redis.hset(keys.job("a"), "status", "scheduled")
    assert scheduler.tick(now=250.0) == 2
    assert published == ["a", "b"]
    assert redis.hget(keys.job("a"), "status") == "queued"
    assert scheduler.tick(now=250.0) == 0
    assert redis.zrange(keys.SCHEDULE, 0, -1) == ["c"]
    other = Scheduler(redis, published.extend)
    assert other.tick(now=400.0) == 0  # the lock is held by the first scheduler


def test_cancel_only_before_sending(rt: Runtime, redis: Any) -> None:
    store = JobStore(redis, 3600)
    job = new_job(redis)
    assert store.cancel(job, "{}", "{}") == "cancelled"
    assert run_job(job, rt) == "final"
    job2 = new_job(redis, "job2")
    run_job(job2, rt)
    assert store.cancel(job2, "{}", "{}") == "succeeded"


def test_claims_and_successes_pipelined_by_sha_survive_a_lost_script_cache(
    settings: Settings, clock: Clock
) -> None:
    """The fast path's coalesced claims and successes (`Ledger.claim_many`, `succeed_many`) go
    by SHA in one round trip; a Redis that lost its scripts (restart, failover) answers NOSCRIPT
    and each call runs once after a SCRIPT LOAD: a claim run twice would come back `busy`."""
    real = require_redis()
    real.flushdb()
    try:
        rt = Runtime(
            settings=settings,
            ledger=Ledger(real, settings.result_ttl),
            gateway=FakeGateway(),  # type: ignore[arg-type]
            cipher=Cipher(SECRET),
            clock=clock,
        )
        jobs = [new_job(real, f"job{n}") for n in range(3)]
        real.script_flush()
        claims = rt.ledger.claim_many(jobs, clock.now, 30.0, "2026-01-01T00:00:00Z")
        assert [c.mode for c in claims] == ["send"] * 3
        real.script_flush()
        done = [(j, c, {"sid": f"SM{n:032d}", "status": "queued"}) for n, (j, c) in
                enumerate(zip(jobs, claims, strict=True))]  # fmt: skip
        assert succeed_many(done, rt) == ["succeeded"] * 3
        assert [real.hget(keys.job(j), "status") for j in jobs] == ["succeeded"] * 3
        assert succeed_many(done, rt) == ["lost-lease"] * 3  # the lease went with the outcome
        real.hset("a-hash", "k", "v")  # GET on a hash: WRONGTYPE
        with pytest.raises(redis_lib.ResponseError):
            scripts.pipelined(real, "take_sid", [(["a-hash"], ["job0", 60])])
    finally:
        real.flushdb()
