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


def test_redis_keys_and_scripts_have_one_home_each() -> None:
    """Every Redis key is built by twilio_jobs.keys (Lua gets builders generated from it), and
    every Lua script is a file under twilio_jobs/lua registered through twilio_jobs.scripts."""
    sources = [
        path
        for package in ("twilio_jobs", "producer", "worker")
        for path in (ROOT / package).rglob("*")
        if path.suffix in (".py", ".lua")
    ]
    for path in sources:
        text = path.read_text()
        name = path.relative_to(ROOT).as_posix()
        if name != "twilio_jobs/keys.py":
            assert '"tj:' not in text and "'tj:" not in text, name
        if name != "twilio_jobs/scripts.py":
            assert "register_script(" not in text, name
        if path.suffix == ".py":
            assert "redis.call(" not in text, name


def test_every_package_and_module_is_packaged() -> None:
    """What `pip install .` (the Dockerfile) gets: every package of the tree, the Lua files,
    celeryconfig (an editable install would hide a package missing here)."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tree = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("twilio_jobs", "producer", "worker")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert tree == set(setup["packages"])
    assert setup["py-modules"] == ["celeryconfig"]
    assert "lua/*.lua" in setup["package-data"]["twilio_jobs"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for top in ("twilio_jobs", "producer", "worker", "celeryconfig.py"):
        assert f"COPY {top}" in dockerfile
