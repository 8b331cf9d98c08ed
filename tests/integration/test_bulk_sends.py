"""The bulk consumer (worker/consumer.py): `twilio-jobs worker` on a Redis broker takes single
sends in bulk and runs them on its event loop, with every guarantee of the Celery task; a warm
shutdown loses nothing and leaves no job under a lease. (The other integration suites run
through it too: their workers are `twilio-jobs worker`.)"""

from __future__ import annotations

import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable

import pytest
import redis

from tests.conftest import (
    BROKER_URL,
    WorkerProcess,
    make_settings,
    service_env,
    statuses,
    wait_quiet,
    wait_until,
)
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.services import free_port
from twilio_jobs import keys
from twilio_jobs.client import Client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        BROKER_URL is not None and not BROKER_URL.startswith("redis://"),
        reason="the bulk consumer takes from a Redis broker only",
    ),
]

UNPACED = '{"+15005550006": 0}'


def _send(jobs: Client, n: int, prefix: str) -> list[str]:
    return [
        jobs.send_sms(
            account_sid=DEFAULT_ACCOUNT_SID,
            account_token=DEFAULT_AUTH_TOKEN,
            from_="+15005550006",
            to=f"+1415{prefix}{i:06d}",
            body="bulk",
        ).jobId
        for i in range(n)
    ]


def _metric(port: int, name: str, labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _no_duplicates(fake: FakeTwilio) -> None:
    per_number = Counter(m["to"] for m in fake.messages)
    assert [to for to, n in per_number.items() if n > 1] == []


def test_twilio_jobs_worker_runs_single_sends_on_the_bulk_consumer(
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    port = free_port()
    env = service_env(
        fake_twilio.url, TWILIO_JOBS_SENDER_RATES=UNPACED, TWILIO_JOBS_METRICS_PORT=str(port)
    )
    fake_twilio.set_latency(0.1)
    worker = start_worker(env, None)  # default pool and concurrency
    jobs = Client(make_settings(env))
    job_ids = _send(jobs, 300, "1")
    wait_until(lambda: statuses(redis_conn, job_ids)["succeeded"] == len(job_ids), timeout=60)
    wait_quiet(redis_conn, fake_twilio)
    assert fake_twilio.created_count == len(job_ids)
    _no_duplicates(fake_twilio)
    assert "bulk consumer on" in worker.log_text()
    # Every one through the bulk consumer, acked (none left unacked or tagged).
    done = 'result="done",task="send"'
    assert _metric(port, "twilio_jobs_bulk_consumer_jobs_total", done) == len(job_ids)
    wait_until(lambda: redis_conn.hlen("unacked") == 0, timeout=10)
    assert not any(redis_conn.scard(k) for k in redis_conn.scan_iter(keys.worker_tags("*")))
    jobs.close()


def test_celery_without_the_flag_keeps_a_task_per_send(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Callable[..., WorkerProcess]
) -> None:
    """TWILIO_JOBS_BULK_CONSUMER=false: the Celery task path, which users of
    `celery -A worker worker` get, still sends everything once."""
    env = service_env(
        fake_twilio.url, TWILIO_JOBS_SENDER_RATES=UNPACED, TWILIO_JOBS_BULK_CONSUMER="false"
    )
    worker = start_worker(env, None)
    jobs = Client(make_settings(env))
    job_ids = _send(jobs, 50, "2")
    wait_until(lambda: statuses(redis_conn, job_ids)["succeeded"] == len(job_ids), timeout=60)
    assert "bulk consumer off: TWILIO_JOBS_BULK_CONSUMER is off" in worker.log_text()
    assert fake_twilio.created_count == len(job_ids)
    jobs.close()


def test_a_warm_shutdown_finishes_or_hands_back_everything_it_took(
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """SIGTERM while hundreds of jobs are taken and the account's in-flight limit (25) keeps
    most of them waiting: the worker exits within its grace, the jobs it had not sent go back
    unclaimed (no lease to wait out), and a new worker sends each remaining job once, at once."""
    env = service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES=UNPACED)
    fake_twilio.set_latency(1.0)
    jobs = Client(make_settings(env))
    job_ids = _send(jobs, 400, "3")
    first = start_worker(env, None, name="first")
    wait_until(lambda: fake_twilio.created_count >= 50, timeout=60)
    assert first.proc is not None
    stopping = time.monotonic()
    first.proc.send_signal(signal.SIGTERM)  # the supervisor forwards it: a warm shutdown
    first.proc.wait(timeout=30)
    stopped_in = time.monotonic() - stopping
    created = fake_twilio.created_count
    assert created < len(job_ids), "the first worker sent everything: nothing was handed back"
    # Nothing is left claimed, unacked or under a lease by the stopped worker.
    assert redis_conn.hlen("unacked") == 0
    unsent = [j for j in job_ids if redis_conn.hget(keys.job(j), "status") != "succeeded"]
    assert unsent and [j for j in unsent if redis_conn.hget(keys.job(j), "lease")] == []
    started = time.monotonic()
    start_worker(env, None, name="second")
    wait_until(lambda: statuses(redis_conn, job_ids)["succeeded"] == len(job_ids), timeout=120)
    took = time.monotonic() - started
    wait_quiet(redis_conn, fake_twilio)
    print(
        f"\nwarm shutdown: stopped in {stopped_in:.1f}s after {created} creates; rest in {took:.1f}s"
    )
    assert stopped_in < 20
    assert fake_twilio.created_count == len(job_ids)
    _no_duplicates(fake_twilio)
    jobs.close()
