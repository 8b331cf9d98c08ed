"""Memory: worker RSS idle and under load at the recommended settings, next to the references.

Under load means draining N jobs against the fake at 100 ms, so that every thread has a
request in flight and the HTTP pool is full; RSS is sampled every 0.1 s and the peak reported.
A prefork worker's RSS is the sum over its processes.

`twilio-jobs worker`, the command users run, is two processes: the supervisor (producer.cli)
that starts the Celery worker again when it dies, and that worker. Its row is the group's RSS
with default settings and Celery's default flags; the supervisor's own RSS is printed below
the table.

    python bench/memory.py [--n 5000] [--quick] [--cli-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drain import TUTORIAL_CONCURRENCY  # noqa: E402
from bench.harness import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    PY,
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


HEADERS = ["worker", "pool", "idle MB", "peak under load MB"]


def idle_rss(worker: Proc, settle: float = 3.0) -> float:
    with worker:
        time.sleep(settle)
        return worker.rss_mb()


def cli_worker(env: dict[str, str]) -> Proc:
    """`twilio-jobs worker` with no options: the supervisor, its Celery worker a child."""
    script = Path(PY).parent / "twilio-jobs"
    argv = [str(script)] if script.exists() else [PY, "-m", "producer.cli"]
    return Proc("cli-worker", [*argv, "worker"], env, ready=[" ready."])


def supervisor_mb(worker: Proc) -> float:
    return psutil.Process(worker.pid).memory_info().rss / 2**20


def profile_cli(worker: Proc, n: int, done: object) -> tuple[float, float, float, float]:
    """Supervisor alone and the group: idle RSS 3 s after ready with an empty queue, then
    peak RSS while it drains n jobs queued at once."""
    worker.start()
    try:
        time.sleep(3.0)
        sup_idle, group_idle = supervisor_mb(worker), worker.rss_mb()
        sup_peak, group_peak = sup_idle, group_idle
        bulk_enqueue(n)
        deadline = time.monotonic() + 120 + n / 20
        while time.monotonic() < deadline:
            finished = done()  # type: ignore[operator]
            sup_peak = max(sup_peak, supervisor_mb(worker))
            group_peak = max(group_peak, worker.rss_mb())
            if finished:
                break
            time.sleep(0.1)
    finally:
        worker.stop()
    return sup_idle, group_idle, sup_peak, group_peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="N=2,000")
    parser.add_argument("--cli-only", action="store_true", help="only `twilio-jobs worker`")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else args.n
    print(machine_line())
    rows = []
    with FakeTwilioProc(latency=0.1) as fake:
        env = service_env(fake.url)
        apply_env(env)
        flush()
        conn = connect()
        cli = profile_cli(cli_worker(env), n, lambda: queue_idle(conn, QUEUE))
        sup_idle, group_idle, sup_peak, group_peak = cli
        rows.append(
            ["`twilio-jobs worker`: supervisor + worker", "defaults", group_idle, group_peak]
        )
        supervisor_line = f"supervisor alone: {sup_idle:.1f} MB idle, {sup_peak:.1f} MB peak"
        if args.cli_only:
            flush()
            print_table("`twilio-jobs worker` memory (RSS, MB)", HEADERS, rows)
            print(supervisor_line)
            return 0
        flush()
        idle = idle_rss(our_worker(env))
        bulk_enqueue(n)
        conn = connect()
        _, peak = profile(our_worker(env), lambda: queue_idle(conn, QUEUE), 120 + n / 20)
        rows.append(
            ["`celery -A worker worker`", f"threads x{RECOMMENDED_CONCURRENCY}", idle, peak]
        )

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
        HEADERS,
        rows,
    )
    print(supervisor_line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
