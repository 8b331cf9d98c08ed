"""What every benchmark script shares: the fake Twilio and worker processes, CPU and memory
readings, Redis housekeeping, waiting for a drain, and printing a table.

Everything runs on this machine: Redis on loopback (BENCH_REDIS_URL, default database 13;
BENCH_RESULT_URL, default database 14, holds the reference tasks' results), the fake Twilio and
the workers as child processes on free loopback ports. Every wait has a deadline.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
RESULT_URL = os.environ.get("BENCH_RESULT_URL", "redis://127.0.0.1:6379/14")
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuv"
QUEUE = "twilio_jobs"
# The README's recommended worker: threads pool (celeryconfig.py), this concurrency.
RECOMMENDED_CONCURRENCY = 64
# What one worker process keeps going at most on its event loop (TWILIO_JOBS_BATCH_WINDOW's
# default): the account's in-flight limit in a benchmark, so that the worker, not the pacing,
# is what is measured.
WORKER_IN_FLIGHT = 200
CELERY_FLAGS = ["--without-mingle", "--without-gossip", "--without-heartbeat"]

# The fake's default account (tests/fake_twilio.py); repeated here so the harness does not
# import aiohttp into the processes it measures.
ACCOUNT_SID = "AC5f37acb24007a320eefb5ffaeb498a78"
AUTH_TOKEN = "fake-auth-token-5b1c0e0c9d2a4f7e"
SMS = {
    "accountSid": ACCOUNT_SID,
    "accountToken": AUTH_TOKEN,
    "from": "+15005550006",
    "to": "+14155550100",
    "body": "benchmark message",
}

_LOG_DIR = Path(tempfile.mkdtemp(prefix="twilio-jobs-bench-"))
if not os.environ.get("BENCH_KEEP_LOGS"):
    atexit.register(shutil.rmtree, _LOG_DIR, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(fake_url: str, **extra: str) -> dict[str, str]:
    """The environment of our API and workers in a benchmark. Pacing is lifted: the benchmark
    sender's rate (a long code: 1/s by default) is unlimited and the account's in-flight limit
    (25 by default) is what one worker keeps going at most (`WORKER_IN_FLIGHT`), so that
    drains measure the worker, not the pacing (as the soak and issue 15's figures do). The
    rest is the defaults (concurrency 64, HTTP pools sized to what they serve). `extra`
    overrides any of it."""
    env = {
        "REDIS_URL": REDIS_URL,
        "TWILIO_API_BASE_URL": fake_url,
        "TWILIO_JOBS_SECRET_KEY": SECRET_KEY,
        "TWILIO_JOBS_WORKER_CONCURRENCY": str(RECOMMENDED_CONCURRENCY),
        "TWILIO_JOBS_SENDER_RATES": json.dumps({SMS["from"]: 0}),
        "TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT": str(WORKER_IN_FLIGHT),
    }
    env.update(extra)
    return env


def apply_env(env: dict[str, str]) -> None:
    """Point this process (the producer side) at the same services as the workers."""
    os.environ.update(env)
    from twilio_jobs.settings import get_settings

    get_settings.cache_clear()


# -- processes ---------------------------------------------------------------------------------


class Proc:
    """A child process in its own session, its output in a log file, ready when a marker shows."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        ready: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.ready = [m.encode() for m in ready]
        self.log_path = _LOG_DIR / f"{name}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Proc:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while self.ready and time.monotonic() < deadline:
            text = self.log_path.read_bytes()
            if any(m in text for m in self.ready):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{text.decode(errors='replace')[-3000:]}")
            time.sleep(0.02)
        if self.ready:
            self.stop()
            raise RuntimeError(f"{self.name} not ready within {timeout}s ({self.log_path})")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def processes(self) -> list[psutil.Process]:
        try:
            main = psutil.Process(self.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children (prefork pool) so far."""
        total = 0.0
        for proc in self.processes():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss_mb(self) -> float:
        total = 0
        for proc in self.processes():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / 2**20

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Proc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeTwilioProc(Proc):
    """tests/fake_twilio.py in its own process, controlled over HTTP."""

    def __init__(self, latency: float = 0.0) -> None:
        self.port = free_port()
        super().__init__(
            "fake-twilio",
            [PY, "-m", "tests.fake_twilio", "--port", str(self.port), "--latency", str(latency)],
            ready=["listening on"],
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def control(self, op: str, **kwargs: Any) -> Any:
        body = json.dumps(kwargs).encode()
        req = urllib.request.Request(
            f"{self.url}/_fake/{op}", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def set_latency(self, seconds: float) -> None:
        self.control("set_latency", seconds=seconds)

    def reset(self) -> None:
        self.control("reset")

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=30) as resp:
            stats: dict[str, Any] = json.loads(resp.read())
        return stats


def our_worker(
    env: dict[str, str], concurrency: int = RECOMMENDED_CONCURRENCY, name: str = "worker"
) -> Proc:
    """Our worker as users run it: `twilio-jobs worker` (its supervisor, the threads pool from
    celeryconfig.py and the bulk consumer, worker/consumer.py)."""
    argv = [PY, "-m", "producer.cli", "worker"]
    argv += ["-c", str(concurrency), "-Q", f"{QUEUE},{QUEUE}.webhooks", "-n", f"{name}@%h"]
    return Proc(name, argv + CELERY_FLAGS, env, ready=[" ready."])


def reference_worker(
    env: dict[str, str], pool: str, concurrency: int, name: str = "reference",
    loglevel: str | None = None,
) -> Proc:  # fmt: skip
    """A worker of bench/reference_tasks.py (its own app and queue on the same Redis).
    Celery's own default log level when `loglevel` is None."""
    from bench.reference_tasks import QUEUE as REF_QUEUE

    argv = [PY, "-m", "celery", "-A", "bench.reference_tasks", "worker", "-P", pool]
    argv += ["-c", str(concurrency), "-Q", REF_QUEUE, "-n", f"{name}@%h"]
    if loglevel:
        argv.append(f"--loglevel={loglevel}")
    return Proc(name, argv + CELERY_FLAGS, env, ready=["bench-reference-ready"])


# -- Redis -------------------------------------------------------------------------------------


def connect(url: str = REDIS_URL) -> redis.Redis:
    conn = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    conn.ping()
    return conn


def flush(*urls: str) -> None:
    for url in urls or (REDIS_URL,):
        conn = connect(url)
        conn.flushdb()
        conn.close()


def queue_idle(conn: redis.Redis, queue: str) -> bool:
    """Nothing waiting in the queue and nothing delivered but unacknowledged (kombu's Redis
    transport keeps delivered messages in the `unacked` hash until the ack)."""
    pipe = conn.pipeline(transaction=False)
    pipe.llen(queue)
    pipe.hlen("unacked")
    waiting, unacked = pipe.execute()
    return int(waiting) == 0 and int(unacked) == 0


def wait_for(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition"
) -> float:
    """Poll until `predicate()` is true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def redis_stalls(since: float) -> tuple[int, float]:
    """Commands slower than 10 ms on the Redis server since `since` (unix time), from any
    client: on a shared machine other people's FLUSHDBs stall everyone for tens of ms.
    Returns how many and the longest in ms."""
    conn = connect()
    try:
        entries = conn.slowlog_get(128)
    finally:
        conn.close()
    slow = [e["duration"] / 1000 for e in entries if e["start_time"] >= since]
    return len(slow), max(slow, default=0.0)


def bulk_enqueue(n: int, chunk: int = 500) -> list[str]:
    """Queue n SMS jobs exactly as `Client.submit` stores them (record + task message in one
    MULTI per chunk), far faster than n submits: for setting up drains, not for measuring."""
    from twilio_jobs.client import Client, new_job_id
    from twilio_jobs.schemas import JobKind, JobStatus

    client = Client()
    request = client.validate(JobKind.sendSms, SMS)
    account_sid, token = client._credentials(request)
    params = {"To": SMS["to"], "From": SMS["from"], "Body": SMS["body"]}
    ids = []
    try:
        for start in range(0, n, chunk):
            pipe = client.redis.pipeline(transaction=True)
            batch = [new_job_id() for _ in range(min(chunk, n - start))]
            for job_id in batch:
                fields = client._fields(
                    JobKind.sendSms, request, params, account_sid, token, JobStatus.queued, ""
                )
                client.store.write(pipe, job_id, fields)
            if not client.dispatcher.queue_in(pipe, batch):
                raise RuntimeError("bulk_enqueue needs the broker on the job store's Redis")
            pipe.execute()
            ids += batch
    finally:
        client.close()
    return ids


def job_statuses(conn: redis.Redis, job_ids: Iterable[str]) -> dict[str, int]:
    from twilio_jobs import keys

    counts: dict[str, int] = {}
    ids = list(job_ids)
    for start in range(0, len(ids), 2000):
        pipe = conn.pipeline(transaction=False)
        for job_id in ids[start : start + 2000]:
            pipe.hget(keys.job(job_id), "status")
        for status in pipe.execute():
            counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


# -- numbers and tables ------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells:
        pairs = enumerate(zip(row, widths, strict=True))
        aligned = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs]
        print("| " + " | ".join(aligned) + " |")
    sys.stdout.flush()


def machine_line() -> str:
    load = os.getloadavg()
    logs = f"; logs in {_LOG_DIR}" if os.environ.get("BENCH_KEEP_LOGS") else ""
    return (
        f"machine: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"python {sys.version.split()[0]}; redis {REDIS_URL}{logs}"
    )
