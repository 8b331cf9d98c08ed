"""Memory: worker RSS idle and under load at the recommended settings, next to the references.

Under load means draining N jobs against the fake at 100 ms, so that every thread has a
request in flight and the HTTP pool is full; RSS is sampled every 0.1 s and the peak reported.
A prefork worker's RSS is the sum over its processes.

First, issue 15's figure: `twilio-jobs worker`, the command users run (a supervisor process
that restarts Celery, and the Celery worker it starts), with default settings but the benchmark
sender's rate (1/s for a long code by default; lifted, as in every drain): the whole process
group's RSS idle (3 s after ready) and its peak while it sends --group-n jobs (4,000) queued
while it runs, with each process's share. Prints the GOAL line (peak <= 150 MB).

    python bench/memory.py [--n 5000] [--quick] [--group-only] [--group-n 4000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import goals  # noqa: E402
from bench.drain import TUTORIAL_CONCURRENCY  # noqa: E402
from bench.harness import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    QUEUE,
    RECOMMENDED_CONCURRENCY,
    REDIS_URL,
    RESULT_URL,
    SECRET_KEY,
    SMS,
    FakeTwilioProc,
    Proc,
    apply_env,
    bulk_enqueue,
    connect,
    flush,
    job_statuses,
    machine_line,
    our_worker,
    print_table,
    queue_idle,
    reference_worker,
    service_env,
)

TWILIO_JOBS = str(Path(sys.executable).with_name("twilio-jobs"))


def _rss(proc: psutil.Process) -> float:
    try:
        return float(proc.memory_info().rss) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def worker_group(fake_url: str, jobs: int) -> list[list[object]]:
    """`twilio-jobs worker` with default settings (but the sender's rate): the group's RSS and
    each process's, idle and at the group's peak while it sends `jobs`. Returns table rows."""
    env = {
        "REDIS_URL": REDIS_URL,
        "TWILIO_API_BASE_URL": fake_url,
        "TWILIO_JOBS_SECRET_KEY": SECRET_KEY,
        "TWILIO_JOBS_SENDER_RATES": json.dumps({SMS["from"]: 0}),
    }
    apply_env(env)
    flush()
    group = Proc("twilio-jobs-worker", [TWILIO_JOBS, "worker"], env, ready=[" ready."])
    group.start(timeout=90)
    conn = connect()
    try:
        time.sleep(3.0)
        procs = group.processes()
        if len(procs) < 2:
            raise RuntimeError(f"twilio-jobs worker: expected 2 processes, found {len(procs)}")
        names = ["supervisor (twilio-jobs worker)"] + [
            f"celery worker (pid {p.pid})" for p in procs[1:]
        ]
        idle = [_rss(p) for p in procs]
        peak_each, peak = list(idle), sum(idle)
        job_ids = bulk_enqueue(jobs)
        deadline = time.monotonic() + 120 + jobs / 20
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            each = [_rss(p) for p in procs]
            if sum(each) > peak:
                peak, peak_each = sum(each), each
            if queue_idle(conn, QUEUE) and job_statuses(conn, job_ids).get("succeeded") == jobs:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"twilio-jobs worker: {jobs} jobs not done in time")
        seconds = time.monotonic() - t0
        after = [_rss(p) for p in procs]
    finally:
        group.stop()
        conn.close()
    print(
        "twilio-jobs worker (default settings but the sender's rate): "
        f"{jobs:,} jobs in {seconds:.1f} s"
    )
    rows: list[list[object]] = [
        [name, i, p, a] for name, i, p, a in zip(names, idle, peak_each, after, strict=True)
    ]
    rows.append(["group", sum(idle), peak, sum(after)])
    print_table(
        f"`twilio-jobs worker` process group RSS, MB ({jobs:,} jobs at 100 ms)",
        ["process", "idle MB", "at the group's peak MB", "after the jobs MB"],
        rows,
    )
    goals.emit(
        "worker_group_peak_rss_mb",
        peak,
        f"idle {sum(idle):.0f} MB; supervisor {peak_each[0]:.0f} + celery "
        f"{sum(peak_each[1:]):.0f} MB at the peak; {jobs:,} jobs",
    )
    return rows


def profile(worker: Proc, done: object, timeout: float) -> tuple[float, float]:
    """Start the worker with its jobs waiting; RSS when ready, peak RSS until `done()`."""
    worker.start()
    idle = worker.rss_mb()
    peak = idle
    deadline = time.monotonic() + timeout
    try:
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            peak = max(peak, worker.rss_mb())
            time.sleep(0.1)
        peak = max(peak, worker.rss_mb())
    finally:
        worker.stop()
    return idle, peak


def idle_rss(worker: Proc, settle: float = 3.0) -> float:
    with worker:
        time.sleep(settle)
        return worker.rss_mb()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="N=2,000")
    parser.add_argument("--group-only", action="store_true", help="only `twilio-jobs worker`")
    parser.add_argument("--group-n", type=int, default=4_000)
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else args.n
    print(machine_line())
    rows = []
    with FakeTwilioProc(latency=0.1) as fake:
        worker_group(fake.url, args.group_n)
        if args.group_only:
            flush()
            return 0
        env = service_env(fake.url)
        apply_env(env)
        flush()
        idle = idle_rss(our_worker(env))
        bulk_enqueue(n)
        conn = connect()
        _, peak = profile(our_worker(env), lambda: queue_idle(conn, QUEUE), 120 + n / 20)
        rows.append(["twilio-jobs worker", f"threads x{RECOMMENDED_CONCURRENCY}", idle, peak])

        from bench import reference_tasks as ref

        ref_env = {
            "TWILIO_API_BASE_URL": fake.url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        }
        m = min(n, 1_000)
        results = connect(RESULT_URL)
        for which, pool, concurrency in (
            ("standard", "threads", ref.STANDARD_CONCURRENCY),
            ("tutorial", "prefork", TUTORIAL_CONCURRENCY),
        ):
            flush(REDIS_URL, RESULT_URL)
            idle = idle_rss(reference_worker(ref_env, pool, concurrency, name=which))
            with ref.app.producer_or_acquire() as producer:
                for _ in range(m):
                    if which == "tutorial":
                        args_ = (ACCOUNT_SID, AUTH_TOKEN, SMS["to"], SMS["from"], SMS["body"])
                        ref.tutorial_send.apply_async(args_, producer=producer)
                    else:
                        ref.standard_send.apply_async(
                            (SMS["to"], SMS["from"], SMS["body"]), producer=producer
                        )
            worker = reference_worker(ref_env, pool, concurrency, name=which)
            _, peak = profile(worker, lambda: results.dbsize() >= m, 120 + m / 10)
            rows.append([f"{which} reference task", f"{pool} x{concurrency}", idle, peak])
        flush(REDIS_URL, RESULT_URL)
    print_table(
        "Worker memory (RSS, MB; prefork: all processes)",
        ["worker", "pool", "idle MB", "peak under load MB"],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
