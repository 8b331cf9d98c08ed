"""docker-compose's worker healthcheck is a real liveness check: run as compose runs it, it
passes while the worker's consumer answers and fails once the worker is dead."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, WorkerProcess

pytestmark = pytest.mark.integration


def _healthcheck(env: dict[str, str], node: str) -> int:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    kind, command = services["worker"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    # compose turns `$$` into `$`; the container's hostname is its worker's node name's host
    command = command.replace('"celery@$$HOSTNAME"', f'"{node}"')
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    full = {**os.environ, **env, "PATH": path, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["sh", "-c", command], cwd=ROOT, env=full, timeout=60).returncode


def test_the_compose_healthcheck_follows_the_worker(
    env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(env)
    assert _healthcheck(env, worker.node) == 0
    worker.kill()
    assert _healthcheck(env, worker.node) != 0
