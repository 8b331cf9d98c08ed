"""Shared fixtures: a real Redis of the run's own, a fake Twilio, real worker processes.

Each run starts its own Redis (tests/services.py), so runs on one machine cannot collide;
TEST_REDIS_URL points it at a shared one instead. The database is flushed around each test
that uses it. Locally a test that needs Redis is skipped when none answers; in CI (CI=true) it
fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.services import RedisServer, run_broker_url, run_redis_url
from twilio_jobs.client import Client
from twilio_jobs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnop"
REDIS_URL = run_redis_url(os.environ.get("TEST_REDIS_URL"))
# With TEST_BROKER_URL (e.g. amqp://guest:guest@127.0.0.1:5672//) the integration tests run
# with that Celery broker (on a vhost of the run's own); the job store stays Redis.
BROKER_URL = run_broker_url(os.environ.get("TEST_BROKER_URL"))

# The seed's requests, but to a number that can exist: the seed's own example, +150055444006,
# is one digit too long for +1, and Twilio refuses it (21211; see test_pipeline).
SEED_TO = "+14155550123"
SEED_SMS = {
    "accountSid": DEFAULT_ACCOUNT_SID,
    "accountToken": DEFAULT_AUTH_TOKEN,
    "from": "+15005550006",
    "to": SEED_TO,
    "body": "text",
}
SEED_MMS = {
    "accountSid": DEFAULT_ACCOUNT_SID,
    "accountToken": DEFAULT_AUTH_TOKEN,
    "from": "+15005550006",
    "to": SEED_TO,
    "mediaUrl": "http://demo.twilio.com/docs/voice.xml",
}
SEED_CALL = {
    "accountSid": DEFAULT_ACCOUNT_SID,
    "accountToken": DEFAULT_AUTH_TOKEN,
    "from": "+15005550006",
    "to": SEED_TO,
    "url": "http://demo.twilio.com/docs/voice.xml",
}


def require_redis(url: str = REDIS_URL) -> redis.Redis:
    conn = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1)
    try:
        conn.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {url} does not answer in CI: {exc}")
        pytest.skip(f"no Redis at {url}")
    return conn


def require_broker() -> None:
    if not BROKER_URL or not BROKER_URL.startswith("amqp"):
        return
    from kombu import Connection

    try:
        with Connection(BROKER_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"broker {BROKER_URL} does not answer in CI: {exc}")
        pytest.skip(f"no broker at {BROKER_URL}")


@pytest.fixture
def redis_conn() -> Iterator[redis.Redis]:
    require_broker()
    conn = require_redis()
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture(scope="session")
def fake_twilio_server() -> Iterator[FakeTwilio]:
    with FakeTwilio(latency=0.0) as fake:
        yield fake


@pytest.fixture
def fake_twilio(fake_twilio_server: FakeTwilio) -> Iterator[FakeTwilio]:
    fake_twilio_server.reset()
    fake_twilio_server.set_latency(0.0)
    fake_twilio_server.set_auto_callbacks(None)
    yield fake_twilio_server
    fake_twilio_server.fail_ratio(429, 0)
    fake_twilio_server.reset()


def service_env(fake_url: str, redis_url: str = REDIS_URL, **extra: str) -> dict[str, str]:
    """The environment of the service under test (worker processes and in-process clients)."""
    env = {
        "REDIS_URL": redis_url,
        "TWILIO_API_BASE_URL": fake_url,
        "TWILIO_JOBS_SECRET_KEY": SECRET_KEY,
        "TWILIO_JOBS_BACKOFF_BASE": "0.05",
        "TWILIO_JOBS_BACKOFF_MAX": "1",
        "TWILIO_JOBS_RECONCILE_DELAY": "0.3",
        "TWILIO_JOBS_READ_TIMEOUT": "2",
        "TWILIO_JOBS_CONNECT_TIMEOUT": "1",
        "TWILIO_JOBS_SCHEDULER_INTERVAL": "0.05",
        "TWILIO_JOBS_WEBHOOK_ALLOW_PRIVATE": "true",
        "TWILIO_JOBS_STALL_AFTER": "10",
    }
    if BROKER_URL:
        env["BROKER_URL"] = BROKER_URL
    env.update(extra)
    return env


def make_settings(env: dict[str, str]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        os.environ.clear()
        os.environ.update(saved)


class WorkerProcess:
    """A real `celery -A worker worker` in a subprocess, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int | None = 16) -> None:
        path = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
        self.env = {**os.environ, **env, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        offset = self.log_path.stat().st_size
        queues = "twilio_jobs,twilio_jobs.webhooks"
        # Each worker its own node name: on RabbitMQ two workers named alike clash on their
        # exclusive remote-control queue.
        self.node = f"{self.log_path.stem}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        self.proc = subprocess.Popen(
            [
                # Through `twilio-jobs worker`, whose supervisor restarts a stalled worker.
                sys.executable,
                "-m",
                "producer.cli",
                "worker",
                # None: the pool and concurrency users get from `twilio-jobs worker`.
                *(
                    []
                    if self.concurrency is None
                    else ["-P", "threads", "-c", str(self.concurrency)]
                ),
                "-Q",
                queues,
                "-n",
                self.node,
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:]
            if b" ready." in text:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {text.decode(errors='replace')[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("worker did not become ready")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def env(fake_twilio: FakeTwilio, redis_conn: redis.Redis) -> dict[str, str]:
    return service_env(fake_twilio.url)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return make_settings(env)


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    jobs = Client(settings)
    yield jobs
    jobs.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(
        env: dict[str, str], concurrency: int | None = 16, name: str = "worker"
    ) -> WorkerProcess:
        proc = WorkerProcess(env, tmp_path / f"{name}.log", concurrency).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def worker(env: dict[str, str], start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker(env)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def statuses(conn: redis.Redis, job_ids: list[str]) -> Counter[str]:
    """How many of the jobs are in each status, in one round trip."""
    pipe = conn.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(f"tj:job:{job_id}", "status")
    return Counter(str(s) for s in pipe.execute())


def broker_depth(conn: redis.Redis, queues: tuple[str, ...] = ("twilio_jobs",)) -> int:
    """Task messages still with the broker: waiting in its queues or delivered and not acked."""
    if BROKER_URL and BROKER_URL.startswith("amqp"):
        from kombu import Connection

        with Connection(BROKER_URL) as amqp:
            channel = amqp.default_channel
            return sum(channel.queue_declare(q, passive=True).message_count for q in queues)
    waiting = sum(int(conn.llen(q)) for q in queues)
    return waiting + int(conn.hlen("unacked"))


def wait_quiet(
    conn: redis.Redis, fake: FakeTwilio, timeout: float = 60.0, queues: tuple[str, ...] = ()
) -> None:
    """Wait until nothing is left that could still send: no task message with the broker or
    unacked, nothing in the schedule (retries, reconciliations, watchdogs), no request in
    flight at Twilio. A test that looks for duplicates waits for this, not for a sleep."""
    names = ("twilio_jobs", *queues)

    def quiet() -> bool:
        return (
            broker_depth(conn, names) == 0
            and conn.zcard("tj:schedule") == 0
            and not fake.in_flight_now
        )

    wait_until(quiet, timeout=timeout, interval=0.1)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@contextlib.contextmanager
def served_api(env: dict[str, str]) -> Iterator[tuple[str, Client]]:
    """The API served by uvicorn on a free loopback port, for clients that speak HTTP (the
    CLIs, Prometheus): yields its base URL and the client library behind it."""
    import threading

    import uvicorn

    from producer.api import create_app

    jobs = Client(make_settings(env))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(jobs.settings, jobs), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10)
        yield f"http://127.0.0.1:{port}", jobs
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        jobs.close()
