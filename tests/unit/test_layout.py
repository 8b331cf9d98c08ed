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


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def test_compose_passes_settings_through_an_optional_env_file() -> None:
    """Settings come from `.env` (compose starts without one): the Twilio credentials and the
    pacing settings, which the environment list does not name, included. Nothing passes an
    empty secret that would count as set (empty is unset, twilio_jobs.settings)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    example = (ROOT / ".env.example").read_text()
    names = {
        line.split("=", 1)[0] for line in example.splitlines() if "=" in line and line[0] != "#"
    }
    assert {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_JOBS_SECRET_KEY"} <= names
    assert {"TWILIO_JOBS_WEBHOOK_SECRET_PREVIOUS", "TWILIO_JOBS_SECRET_KEY_PREVIOUS"} <= names
    assert {"TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT", "TWILIO_JOBS_SENDER_RATES"} <= names
    for name in ("api", "worker"):
        service = services[name]
        assert service["env_file"] == [{"path": ".env", "required": False}], name
        environment = service["environment"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert "TWILIO_AUTH_TOKEN" not in environment  # from .env, not overridden here
        for value in environment.values():
            assert value != "", name


def test_an_example_env_file_gives_the_default_settings() -> None:
    from twilio_jobs.settings import Settings

    settings = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.webhook_secret is None and settings.twilio_auth_token is None
    assert settings.model_dump() == defaults.model_dump()


def test_compose_worker_is_health_checked_and_stops_gracefully() -> None:
    from twilio_jobs.settings import Settings

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    worker = services["worker"]
    check = worker["healthcheck"]
    assert check["test"][0] == "CMD-SHELL"
    assert "celery -A worker inspect ping" in check["test"][1]
    assert '"celery@$$HOSTNAME"' in check["test"][1]  # this container's worker, not any
    assert _seconds(check["timeout"]) < _seconds(check["interval"])
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    call = defaults.connect_timeout + defaults.read_timeout
    webhook = 3 * defaults.webhook_timeout
    assert _seconds(worker["stop_grace_period"]) > max(call, webhook)
    # the API lets a long poll (GET ?wait=, up to max_wait) answer before it stops
    assert _seconds(services["api"]["stop_grace_period"]) > defaults.max_wait


def test_compose_config_is_accepted() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        import pytest

        pytest.skip("docker-compose is not installed")
    subprocess.run([binary, "config", "-q"], cwd=ROOT, check=True)


def test_producer_does_not_import_worker_or_twilios_client() -> None:
    """The API checks Twilio's signatures with twilio-python's RequestValidator (which needs
    only the standard library), and imports nothing else of twilio, nor the worker."""
    code = (
        "import sys, twilio_jobs.client, producer.api\n"
        "allowed = {'twilio', 'twilio.request_validator'}\n"
        "bad = [m for m in sys.modules if m == 'worker' or m.startswith('worker.')\n"
        "       or (m.split('.')[0] == 'twilio' and m not in allowed)]\n"
        "assert not bad, bad\n"
        "assert 'twilio.request_validator' in sys.modules\n"
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
