"""The deployment files: docker-compose keeps Redis durable and healthy; the API has no stray state."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_redis_is_persistent_and_checked() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "api", "worker"} <= set(services)
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert "healthcheck" in redis
    assert services["api"]["build"] == services["worker"]["build"] == "."


def test_compose_config_is_accepted() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        import pytest

        pytest.skip("docker-compose is not installed")
    subprocess.run([binary, "config", "-q"], cwd=ROOT, check=True)


def test_producer_does_not_import_worker_or_twilio() -> None:
    code = (
        "import sys, twilio_jobs.client, producer.api\n"
        "bad = [m for m in sys.modules if m in ('worker', 'twilio') or m.startswith(('worker.', 'twilio.'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_the_public_api_imports_no_framework() -> None:
    """A web app that does `from twilio_jobs import ...` gets neither Celery, FastAPI, twilio,
    nor the producer or worker packages (import-linter checks the same statically)."""
    code = (
        "import sys\n"
        "from twilio_jobs import AsyncHttpClient, Client, HttpClient, JobRecord, verify_webhook\n"
        "roots = ('celery', 'fastapi', 'starlette', 'uvicorn', 'twilio', 'producer', 'worker')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in roots]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    assert (ROOT / "twilio_jobs" / "py.typed").exists()
