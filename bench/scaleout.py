"""Scale-out: 1, 2 and 4 worker processes (recommended settings each) on the same Redis,
draining N single sends against the fake at 100 ms.

Next to jobs/s: the workers' CPU, the fake's, Redis's (from INFO; the server is shared, so
other clients add to it) and the whole machine's busy share over the run, which shows where
the 2 cores, not the workers, set the limit.

    python bench/scaleout.py [--n 10000] [--processes 1 --processes 2 --processes 4] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    QUEUE,
    WORKER_IN_FLIGHT,
    FakeTwilioProc,
    apply_env,
    bulk_enqueue,
    connect,
    flush,
    machine_line,
    our_worker,
    print_table,
    queue_idle,
    service_env,
    wait_for,
)


def redis_cpu() -> float:
    info = connect().info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run(fake: FakeTwilioProc, n: int, processes: int) -> list[object]:
    flush()
    fake.reset()
    # The account's in-flight limit lifted for every process, so that the processes, not the
    # pacing, are what is measured.
    in_flight = processes * WORKER_IN_FLIGHT
    env = service_env(fake.url, TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT=str(in_flight))
    apply_env(env)
    conn = connect()
    workers = [our_worker(env, name=f"scale{i}") for i in range(processes)]
    try:
        for worker in workers:
            worker.start()
        t0 = time.monotonic()
        cpu0 = [w.cpu_seconds() for w in workers]
        fake0, redis0 = fake.cpu_seconds(), redis_cpu()
        bulk_enqueue(n)  # the workers drain while it writes (it is much faster than they are)
        psutil.cpu_percent()
        t1 = wait_for(lambda: queue_idle(conn, QUEUE), 120 + n / 20, what="drained")
        busy = psutil.cpu_percent() / 100 * (os.cpu_count() or 1)
        cpu = sum(w.cpu_seconds() - c for w, c in zip(workers, cpu0, strict=True))
        fake_cpu, redis_cpu_s = fake.cpu_seconds() - fake0, redis_cpu() - redis0
    finally:
        for worker in workers:
            worker.stop()
    seconds = t1 - t0
    bound = in_flight / 0.1
    return [
        processes, n, seconds, n / seconds, cpu / seconds, cpu / seconds / processes,
        1000 * cpu / n, fake_cpu / seconds, redis_cpu_s / seconds, busy, bound,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--processes", type=int, action="append")
    parser.add_argument("--quick", action="store_true", help="N=2,000")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else args.n
    print(machine_line())
    rows = []
    with FakeTwilioProc(latency=0.1) as fake:
        for processes in args.processes or [1, 2, 4]:
            rows.append(run(fake, n, processes))
    flush()
    print_table(
        "Scale-out at 100 ms fake latency (cores = CPU seconds per wall second)",
        ["worker processes", "jobs", "seconds", "jobs/s", "workers' cores", "cores per worker",
         "worker CPU-ms/job", "fake cores", "Redis cores", "machine busy cores (of 2)",
         "bound jobs/s"],
        rows,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
