"""Drain: N queued jobs against the fake Twilio at 100 ms and at 0 ms latency.

For each: jobs/s and worker CPU-ms per job, for our single sends, the three reference tasks of
bench/reference_tasks.py (lean, standard done right, tutorial), a plain synchronous
twilio-python loop, campaign traffic, and the bound (in-flight limit / latency).

At 100 ms a row runs at its in-flight bound unless it runs out of CPU first: our worker keeps
up to 200 requests going (its event loop's window; the harness sets the account's in-flight
limit to match), the lean task one per thread. So the lean task runs twice: with its 50
threads, and with 200 (as many requests in flight as ours); the goal is measured against the
faster of the two.

Every row is measured the same way: the jobs are queued first, then the worker is started;
the clock and the CPU reading start when it reports ready and stop when the last job is done.
With --rounds N every row runs N times (the rows interleaved); the table shows each row's
median round, and its best. At 100 ms it prints issue 15's GOAL lines (bench/goals.py) for
single sends against the lean task (the strongest reference), their worker CPU per job and
the campaign rate, from the median rounds.

    python bench/drain.py [--n 10000] [--quick] [--rounds 1] [--latency 0.1 --latency 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import campaign_slot, goals  # noqa: E402
from bench.harness import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    QUEUE,
    RECOMMENDED_CONCURRENCY,
    REDIS_URL,
    RESULT_URL,
    SMS,
    WORKER_IN_FLIGHT,
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
    wait_for,
)

TUTORIAL_CONCURRENCY = 8
OURS = "twilio-jobs single sends"
LEAN = "lean hand-written task"
LEAN_WIDE = "lean task, 200 threads"
CAMPAIGN = "campaign (2 processes)"
ROWS = ["ours", "lean", "lean-200", "standard", "tutorial", "loop", "campaign"]


@dataclass
class Row:
    name: str
    pool: str
    n: int
    seconds: float
    worker_cpu: float
    fake_cpu: float
    in_flight: int | None

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def cells(self, latency: float) -> list[object]:
        bound = self.in_flight / latency if self.in_flight and latency > 0 else None
        return [
            self.name,
            self.pool,
            self.n,
            self.seconds,
            self.rate,
            self.worker_cpu * 1000 / self.n,
            self.worker_cpu / self.seconds,
            self.fake_cpu * 1000 / self.n,
            bound,
            f"{100 * self.rate / bound:.0f}%" if bound else "CPU-bound",
        ]


def _timeout(n: int) -> float:
    return 120.0 + n / 20


def _measure(worker: Proc, fake: FakeTwilioProc, done: object, n: int, name: str) -> tuple:
    """Start `worker`, wait for `done()`; returns seconds, worker CPU s, fake CPU s."""
    worker.start()
    t0, cpu0, fake0 = time.monotonic(), worker.cpu_seconds(), fake.cpu_seconds()
    try:
        t1 = wait_for(done, _timeout(n), what=f"{name} drained")  # type: ignore[arg-type]
        cpu1, fake1 = worker.cpu_seconds(), fake.cpu_seconds()
    finally:
        worker.stop()
    return t1 - t0, cpu1 - cpu0, fake1 - fake0


def _check_fake(fake: FakeTwilioProc, n: int, name: str) -> None:
    created = fake.stats()["created_count"]
    if created != n:
        raise RuntimeError(f"{name}: the fake created {created} resources for {n} jobs")


def ours(fake: FakeTwilioProc, n: int, concurrency: int = RECOMMENDED_CONCURRENCY) -> Row:
    flush()
    fake.reset()
    env = service_env(fake.url, TWILIO_JOBS_WORKER_CONCURRENCY=str(concurrency))
    apply_env(env)
    job_ids = bulk_enqueue(n)
    conn = connect()
    pending = set(job_ids)

    def drained() -> bool:
        if not queue_idle(conn, QUEUE):
            return False
        counts = job_statuses(conn, pending)
        return counts.get("succeeded", 0) == len(pending)

    seconds, cpu, fake_cpu = _measure(our_worker(env, concurrency), fake, drained, n, "ours")
    _check_fake(fake, n, "ours")
    return Row(OURS, f"threads x{concurrency}", n, seconds, cpu,
               fake_cpu, WORKER_IN_FLIGHT)  # fmt: skip


def reference(fake: FakeTwilioProc, n: int, which: str, concurrency: int | None = None) -> Row:
    flush(REDIS_URL, RESULT_URL)
    fake.reset()
    env = {
        "TWILIO_API_BASE_URL": fake.url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "BENCH_REDIS_URL": REDIS_URL,
        "BENCH_RESULT_URL": RESULT_URL,
    }
    if concurrency is not None:
        env["BENCH_CONCURRENCY"] = str(concurrency)
    from bench import reference_tasks as ref

    args = (SMS["to"], SMS["from"], SMS["body"])
    with ref.app.producer_or_acquire() as producer:
        for i in range(n):
            if which == "tutorial":
                ref.tutorial_send.apply_async((ACCOUNT_SID, AUTH_TOKEN, *args), producer=producer)
            elif which == "lean":
                ref.lean_send.apply_async((str(i), *args), producer=producer)
            else:
                ref.standard_send.apply_async(args, producer=producer)
    results = connect(RESULT_URL)
    loglevel = None
    if which == "tutorial":
        pool, concurrency, name = "prefork", TUTORIAL_CONCURRENCY, "tutorial task"
    elif which == "lean":
        pool, name = "threads", LEAN if concurrency is None else LEAN_WIDE
        concurrency = concurrency or ref.STANDARD_CONCURRENCY
        loglevel = "WARNING"
    else:
        pool, name = "threads", "standard done right"
        concurrency = ref.STANDARD_CONCURRENCY
    worker = reference_worker(env, pool, concurrency, name=which, loglevel=loglevel)
    seconds, cpu, fake_cpu = _measure(worker, fake, lambda: results.dbsize() >= n, n, name)
    _check_fake(fake, n, name)
    return Row(name, f"{pool} x{concurrency}", n, seconds, cpu, fake_cpu, concurrency)


def plain_loop(fake: FakeTwilioProc, n: int) -> Row:
    """A synchronous loop over `messages.create` on one shared Client, in this process."""
    fake.reset()
    from twilio.rest import Client

    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = fake.url
    client.messages.create(to=SMS["to"], from_=SMS["from"], body=SMS["body"])  # warm up
    fake0 = fake.cpu_seconds()
    t0, cpu0 = time.monotonic(), time.process_time()
    for _ in range(n):
        client.messages.create(to=SMS["to"], from_=SMS["from"], body=SMS["body"])
    t1, cpu1 = time.monotonic(), time.process_time()
    return Row("plain twilio-python loop", "1 thread", n, t1 - t0, cpu1 - cpu0,
               fake.cpu_seconds() - fake0, 1)  # fmt: skip


def campaign(fake: FakeTwilioProc, n: int, processes: int = 2, in_flight: int = 100) -> Row:
    """CAMPAIGN SLOT: one n-recipient campaign drained by `processes` workers.

    The workers are started first; the clock starts before the campaign is created (accepting
    it is far faster than sending it) and stops when nothing is queued, unacknowledged or
    scheduled any more."""
    from twilio_jobs import keys

    flush()
    fake.reset()
    env = service_env(
        fake.url,
        TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT=str(in_flight),
        TWILIO_JOBS_SENDER_RATES=json.dumps({SMS["from"]: 0}),  # the in-flight bound, not a rate
    )
    apply_env(env)
    from twilio_jobs.client import Client

    conn = connect()
    workers = [our_worker(env, name=f"campaign{i}") for i in range(processes)]
    try:
        for worker in workers:
            worker.start()
        t0, fake0 = time.monotonic(), fake.cpu_seconds()
        cpu0 = [w.cpu_seconds() for w in workers]
        client = Client()
        campaign_slot.create(client, n)
        client.close()

        def drained() -> bool:
            return queue_idle(conn, QUEUE) and not conn.zcard(keys.SCHEDULE)

        t1 = wait_for(drained, _timeout(n), what="campaign drained")
        cpu = sum(w.cpu_seconds() - c for w, c in zip(workers, cpu0, strict=True))
        fake_cpu = fake.cpu_seconds() - fake0
    finally:
        for worker in workers:
            worker.stop()
    _check_fake(fake, n, "campaign")
    return Row(f"campaign ({processes} processes)", f"in-flight {in_flight}", n, t1 - t0, cpu,
               fake_cpu, in_flight)  # fmt: skip


HEADERS = ["what", "pool", "jobs", "seconds", "jobs/s", "worker CPU-ms/job", "worker cores",
           "fake CPU-ms/job", "bound jobs/s", "of bound"]  # fmt: skip


def measure(fake: FakeTwilioProc, which: str, n: int, latency: float) -> Row | None:
    if which == "ours":
        return ours(fake, n)
    if which in ("lean", "standard"):
        return reference(fake, n, which)
    if which == "lean-200":
        return reference(fake, n, "lean", WORKER_IN_FLIGHT)
    if which == "tutorial":
        # The tutorial task is slow: N=2,000 as in the reference figures.
        return reference(fake, min(n, 2_000), "tutorial")
    if which == "loop":
        return plain_loop(fake, 50 if latency >= 0.05 else min(n, 2_000))
    if which == "campaign" and campaign_slot.available():
        return campaign(fake, n)
    return None


def median_row(rows: list[Row]) -> Row:
    """The median round by rate (the lower middle of an even count)."""
    return sorted(rows, key=lambda r: r.rate)[(len(rows) - 1) // 2]


def strongest_lean(by_name: dict[str, Row]) -> Row | None:
    """The faster of the lean task's rows (50 threads, 200 threads)."""
    leans = [by_name[name] for name in (LEAN, LEAN_WIDE) if name in by_name]
    return max(leans, key=lambda r: r.rate) if leans else None


def report_goals(by_name: dict[str, Row], rounds: int) -> None:
    """Issue 15's goals measured here, at 100 ms, from the median rounds."""
    of = f" (median of {rounds})" if rounds > 1 else ""
    mine, lean = by_name.get(OURS), strongest_lean(by_name)
    if mine and lean:
        goals.emit(
            "single_vs_lean",
            mine.rate / lean.rate,
            f"{mine.rate:.0f} vs {lean.rate:.0f} jobs/s ({lean.name}), one worker process each{of}",
        )
    if mine:
        goals.emit(
            "single_cpu_ms",
            mine.worker_cpu * 1000 / mine.n,
            f"{mine.n:,} jobs, threads x{RECOMMENDED_CONCURRENCY}{of}",
        )
    camp = by_name.get(CAMPAIGN)
    if camp:
        goals.emit("campaign_jobs_s", camp.rate, f"{camp.n:,} recipients{of}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="N=2,000")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each row (median shown)")
    parser.add_argument("--latency", type=float, action="append", help="seconds (repeatable)")
    parser.add_argument("--only", action="append", choices=ROWS)
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else args.n
    latencies = args.latency or [0.1, 0.0]
    only = [which for which in ROWS if which in set(args.only or ROWS)]
    print(machine_line())
    with FakeTwilioProc() as fake:
        for latency in latencies:
            fake.set_latency(latency)
            runs: dict[str, list[Row]] = {}
            for _ in range(max(1, args.rounds)):
                for which in only:
                    row = measure(fake, which, n, latency)
                    if row is not None:
                        runs.setdefault(row.name, []).append(row)
            rows = [median_row(rs) for rs in runs.values()]
            headers, cells = HEADERS, [row.cells(latency) for row in rows]
            if args.rounds > 1:
                headers = [*HEADERS, "best jobs/s", "rounds jobs/s"]
                for cell, rs in zip(cells, runs.values(), strict=True):
                    cell += [max(r.rate for r in rs), " ".join(f"{r.rate:.0f}" for r in rs)]
            title = f"Drain at {latency * 1000:.0f} ms fake Twilio latency"
            if args.rounds > 1:
                title += f" (median of {args.rounds} rounds)"
            print_table(title, headers, cells)
            if "campaign" in only and not campaign_slot.available():
                print("campaign traffic: not built yet (bench/campaign_slot.py)")
            by_name = {row.name: row for row in rows}
            mine = by_name.get(OURS)
            for other in (LEAN, LEAN_WIDE, "standard done right", "tutorial task"):
                if mine and other in by_name:
                    ratio = mine.rate / by_name[other].rate
                    print(f"single sends / {other}, per worker: {ratio:.2f}x")
            lean = strongest_lean(by_name)
            if mine and lean and mine.in_flight and lean.in_flight and latency > 0:
                print(
                    f"bounds at {latency * 1000:.0f} ms: single sends {mine.in_flight} in flight"
                    f" at most, {lean.name} {lean.in_flight}; the lean task ran at"
                    f" {100 * lean.rate * latency / lean.in_flight:.0f}% of its bound"
                )
            if mine and "tutorial task" in by_name:
                # The tutorial worker is 8 processes (prefork); ours is one.
                per_process = by_name["tutorial task"].rate / TUTORIAL_CONCURRENCY
                print(
                    f"single sends / tutorial task, per worker process: "
                    f"{mine.rate / per_process:.1f}x"
                )
            if len(runs) and latency == 0.1:
                report_goals(by_name, args.rounds)
            if args.rounds > 1:
                spread = [f"{name} {statistics.pstdev([r.rate for r in rs]):.0f}"
                          for name, rs in runs.items()]  # fmt: skip
                print("jobs/s spread (pstdev): " + ", ".join(spread))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
