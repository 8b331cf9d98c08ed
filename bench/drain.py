"""Drain: N queued jobs against the fake Twilio at 100 ms and at 0 ms latency.

For each: jobs/s and worker CPU-ms per job, for our single sends, the two reference tasks of
bench/reference_tasks.py, a plain synchronous twilio-python loop, campaign traffic when it
exists, and the bound (in-flight limit / latency).

Every row is measured the same way: the jobs are queued first, then the worker is started;
the clock and the CPU reading start when it reports ready and stop when the last job is done.

    python bench/drain.py [--n 10000] [--quick] [--latency 0.1 --latency 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import campaign_slot  # noqa: E402
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
    return Row("twilio-jobs single sends", f"threads x{concurrency}", n, seconds, cpu,
               fake_cpu, concurrency)  # fmt: skip


def reference(fake: FakeTwilioProc, n: int, which: str) -> Row:
    flush(REDIS_URL, RESULT_URL)
    fake.reset()
    env = {
        "TWILIO_API_BASE_URL": fake.url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "BENCH_REDIS_URL": REDIS_URL,
        "BENCH_RESULT_URL": RESULT_URL,
    }
    from bench import reference_tasks as ref

    args = (SMS["to"], SMS["from"], SMS["body"])
    with ref.app.producer_or_acquire() as producer:
        for _ in range(n):
            if which == "tutorial":
                ref.tutorial_send.apply_async((ACCOUNT_SID, AUTH_TOKEN, *args), producer=producer)
            else:
                ref.standard_send.apply_async(args, producer=producer)
    results = connect(RESULT_URL)
    if which == "tutorial":
        pool, concurrency, name = "prefork", TUTORIAL_CONCURRENCY, "tutorial task"
    else:
        pool, concurrency, name = "threads", ref.STANDARD_CONCURRENCY, "standard done right"
    worker = reference_worker(env, pool, concurrency, name=which)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="N=2,000")
    parser.add_argument("--latency", type=float, action="append", help="seconds (repeatable)")
    parser.add_argument(
        "--only", action="append", choices=["ours", "standard", "tutorial", "loop", "campaign"]
    )
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else args.n
    latencies = args.latency or [0.1, 0.0]
    only = set(args.only or ["ours", "standard", "tutorial", "loop", "campaign"])
    print(machine_line())
    with FakeTwilioProc() as fake:
        for latency in latencies:
            fake.set_latency(latency)
            rows: list[Row] = []
            if "ours" in only:
                rows.append(ours(fake, n))
            if "standard" in only:
                rows.append(reference(fake, n, "standard"))
            if "tutorial" in only:
                # The tutorial task is slow: N=2,000 as in the reference figures.
                rows.append(reference(fake, min(n, 2_000), "tutorial"))
            if "loop" in only:
                rows.append(plain_loop(fake, 50 if latency >= 0.05 else min(n, 2_000)))
            campaign_note = ""
            if "campaign" in only:
                if campaign_slot.available():
                    rows.append(campaign(fake, n))
                else:
                    campaign_note = "campaign traffic: not built yet (bench/campaign_slot.py)"
            print_table(
                f"Drain at {latency * 1000:.0f} ms fake Twilio latency",
                HEADERS,
                [row.cells(latency) for row in rows],
            )
            if campaign_note:
                print(campaign_note)
            by_name = {row.name: row.rate for row in rows}
            mine = by_name.get("twilio-jobs single sends")
            for other in ("standard done right", "tutorial task"):
                if mine and other in by_name:
                    print(f"single sends / {other}, per worker: {mine / by_name[other]:.2f}x")
            if mine and "tutorial task" in by_name:
                # The tutorial worker is 8 processes (prefork); ours is one.
                per_process = by_name["tutorial task"] / TUTORIAL_CONCURRENCY
                print(
                    f"single sends / tutorial task, per worker process: {mine / per_process:.1f}x"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
