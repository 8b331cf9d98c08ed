"""The cost of TWILIO_JOBS_STORE_MIN_REPLICAS: enqueue rates against a Redis master with one
replica on loopback, without the setting (0) and with it (1: a WAIT for the replica after each
accept, or each coalesced batch of accepts in the API).

    python bench/replicas.py [--requests 10000] [--connections 64] [--library-n 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from bench.enqueue import library_rate, load, serve  # noqa: E402
from bench.harness import (  # noqa: E402
    FakeTwilioProc,
    apply_env,
    free_port,
    machine_line,
    print_table,
    service_env,
)


def redis_server(workdir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    binary = shutil.which("redis-server") or "redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--dir", str(workdir), *extra]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = redis.Redis(port=port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if conn.ping():
                return proc, port
        except redis.RedisError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--library-n", type=int, default=3_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(machine_line())
    workdir = Path(tempfile.mkdtemp(prefix="twilio-jobs-bench-replicas-"))
    master, master_port = redis_server(workdir)
    replica_dir = workdir / "replica"
    replica_dir.mkdir()
    replica, _ = redis_server(replica_dir, "--replicaof", "127.0.0.1", str(master_port))
    conn = redis.Redis(port=master_port)
    while conn.info("replication").get("slave0", {}).get("state") != "online":
        time.sleep(0.1)
    runs: dict[int, list[list[float]]] = {0: [], 1: []}
    try:
        with FakeTwilioProc() as fake:
            for i in range(args.rounds):
                for wanted in (0, 1) if i % 2 == 0 else (1, 0):
                    env = service_env(
                        fake.url,
                        REDIS_URL=f"redis://127.0.0.1:{master_port}/0",
                        TWILIO_JOBS_STORE_MIN_REPLICAS=str(wanted),
                    )
                    apply_env(env)
                    server, port = serve("producer.api:create_app", env)
                    try:
                        url = f"http://127.0.0.1:{port}/api/twilio/sendSms"
                        load(url, 1_000, args.connections)  # warm up
                        http = load(url, args.requests, args.connections)
                    finally:
                        server.stop()
                    rate, cpu_ms = library_rate(args.library_n)
                    conn.flushdb()
                    assert http["statuses"] == {"202": args.requests}, http["statuses"]
                    runs[wanted].append(
                        [http["req_per_s"], http["p50_ms"], http["p99_ms"], rate, cpu_ms]
                    )
    finally:
        for proc in (replica, master):
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(
        f"Enqueue with a replica on loopback ({args.requests:,} HTTP requests at "
        f"{args.connections} connections; {args.library_n:,} Client.submit calls; median of "
        f"{args.rounds} rounds)",
        ["STORE_MIN_REPLICAS", "HTTP req/s", "p50 ms", "p99 ms", "submit jobs/s",
         "submit CPU-ms/job"],
        [[wanted, *median_run(rs)] for wanted, rs in runs.items()],
    )  # fmt: skip
    return 0


def median_run(runs: list[list[float]]) -> list[float]:
    """The median of each column over the rounds (rounds alternate the order)."""
    return [sorted(column)[len(column) // 2] for column in zip(*runs, strict=True)]


if __name__ == "__main__":
    raise SystemExit(main())
