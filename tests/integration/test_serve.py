"""`twilio-jobs serve` (what `make run` runs), as a user starts it: no REDIS_URL, so an embedded
Valkey, a worker and the API in one command. It sends, and a SIGTERM (docker stop, systemd,
kill) stops all three: nothing it started is left running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SEED_SMS, wait_until
from tests.fake_twilio import FakeTwilio

pytestmark = pytest.mark.integration


def _descendants(pid: int) -> set[int]:
    """The processes under `pid`, from /proc (the worker, its supervisor's child, Valkey)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing paren
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_serve_sends_and_a_sigterm_stops_everything_it_started(
    fake_twilio: FakeTwilio, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "BROKER_URL", "TWILIO_JOBS_SECRET_KEY")
    }
    env.update(
        TWILIO_API_BASE_URL=fake_twilio.url,
        TWILIO_JOBS_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    started: set[int] = set()
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=60)
        accepted = httpx.post(f"{base}/api/twilio/sendSms", json=SEED_SMS, timeout=10)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["jobId"]

        def outcome() -> dict[str, object] | None:
            body = httpx.get(f"{base}/api/jobs/{job_id}?wait=5", timeout=10).json()
            return body if body.get("status") in ("succeeded", "failed") else None

        assert wait_until(outcome, timeout=60)["status"] == "succeeded"
        assert len(fake_twilio.messages) == 1

        started = _descendants(proc.pid)
        assert len(started) >= 2, log_path.read_text()  # Valkey and the worker, at least
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()[-3000:]
        wait_until(lambda: not any(map(_alive, started)), timeout=30)
    finally:
        if proc.poll() is None:
            started |= _descendants(proc.pid)
            proc.kill()
            proc.wait()
        for pid in filter(_alive, started):
            os.kill(pid, signal.SIGKILL)
