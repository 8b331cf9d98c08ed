"""End to end: enqueue-to-succeeded latency at a steady rate (default 100 jobs/s, fake at 0 ms).

The producer is the client library in this process, submitting on a fixed schedule; one worker
at the recommended settings sends. A job's latency runs from just before `Client.submit` to
the `updatedAt` its worker stamped when it wrote `succeeded` (same machine, same clock; the
stamp has millisecond resolution).

    python bench/latency.py [--rate 100] [--seconds 30] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    QUEUE,
    SMS,
    FakeTwilioProc,
    apply_env,
    connect,
    flush,
    machine_line,
    our_worker,
    percentile,
    print_table,
    queue_idle,
    redis_stalls,
    service_env,
    wait_for,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="jobs per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=0.0, help="fake Twilio latency, s")
    parser.add_argument("--quick", action="store_true", help="10 seconds")
    args = parser.parse_args(argv)
    seconds = 10.0 if args.quick else args.seconds
    n = int(args.rate * seconds)
    print(machine_line())
    flush()
    with FakeTwilioProc(latency=args.latency) as fake:
        env = service_env(fake.url)
        apply_env(env)
        from twilio_jobs import keys
        from twilio_jobs.client import Client
        from twilio_jobs.schemas import JobKind

        client = Client()
        conn = connect()
        with our_worker(env) as worker:
            for _ in range(50):  # warm up both sides
                client.submit(JobKind.sendSms, SMS)
            wait_for(lambda: queue_idle(conn, QUEUE), 30, what="warm-up drained")
            started: dict[str, float] = {}
            behind = 0
            t0 = time.perf_counter()
            since = time.time()
            cpu0 = worker.cpu_seconds()
            for i in range(n):
                due = t0 + i / args.rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                else:
                    behind += 1
                stamp = time.time()
                started[client.submit(JobKind.sendSms, SMS).job_id] = stamp
            wait_for(lambda: queue_idle(conn, QUEUE), 60, what="drained")
            cpu = worker.cpu_seconds() - cpu0
            wall = time.perf_counter() - t0
        stalls, longest = redis_stalls(since)
        pipe = conn.pipeline(transaction=False)
        for job_id in started:
            pipe.hmget(keys.job(job_id), "status", "updatedAt")
        latencies = []
        failed = 0
        for stamp, (status, updated) in zip(started.values(), pipe.execute(), strict=True):
            if status != "succeeded":
                failed += 1
                continue
            done = datetime.fromisoformat(updated.replace("Z", "+00:00")).timestamp()
            latencies.append(1000 * (done - stamp))
        client.close()
    flush()
    print_table(
        f"End to end at a steady {args.rate:.0f} jobs/s, fake Twilio at "
        f"{args.latency * 1000:.0f} ms (one worker, recommended settings)",
        ["jobs", "not succeeded", "p50 ms", "p90 ms", "p99 ms", "max ms", "worker CPU-ms/job",
         "late submits"],
        [[n, failed, percentile(latencies, 50), percentile(latencies, 90),
          percentile(latencies, 99), max(latencies, default=float("nan")), 1000 * cpu / n,
          behind]],
    )  # fmt: skip
    print(
        f"Redis commands over 10 ms during the run (any client on this server): {stalls}"
        + (f", longest {longest:.0f} ms" if stalls else "")
    )
    print(f"wall time {wall:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
