"""Memory: worker RSS idle and under load at the recommended settings, next to the references.

Under load means draining N jobs against the fake at 100 ms, so that every thread has a
request in flight and the HTTP pool is full; RSS is sampled every 0.1 s and the peak reported.
A prefork worker's RSS is the sum over its processes.

    python bench/memory.py [--n 5000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drain import TUTORIAL_CONCURRENCY  # noqa: E402
from bench.harness import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    QUEUE,
    RECOMMENDED_CONCURRENCY,
    REDIS_URL,
    RESULT_URL,
    SMS,
    FakeTwilioProc,
    Proc,
    apply_env,
    bulk_enqueue,
    connect,
    flush,
    machine_line,
    our_worker,
    print_table,
    queue_idle,
    reference_worker,
    service_env,
)


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
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else args.n
    print(machine_line())
    rows = []
    with FakeTwilioProc(latency=0.1) as fake:
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
