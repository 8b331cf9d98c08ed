"""Profile our worker with py-spy while it drains single sends, and print the top costs per job.

    python bench/profile_worker.py [--n 5000] [--latency 0.1] [--speedscope out.json]

Only samples of the thread holding the GIL count (`py-spy --gil`): on this pool that is the CPU
the process spends, which is what caps one worker process. Two views: time by step of a job
(where in our code; outside a step, by thread), and self time by library.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    QUEUE,
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

# First match from the leaf up wins: which step of a job the time went to. Outside them, the
# thread says what it was (the event loop's own I/O, Celery's consumer, a scheduler).
STEPS = [
    ("ledger claims (Lua, pipelined)", "claim_many (twilio_jobs/ledger.py"),
    ("successes written (settle_many, log line)", "succeed_many (worker/handlers.py"),
    ("other worker.handlers (queue-time metric, failures)", "(worker/handlers.py"),
    ("pacing (LanePump, acquire.lua)", "LanePump._run (worker/fastpath.py"),
    ("Twilio create (aiohttp)", "AsyncTwilioApi.create (twilio_jobs/twilio/api.py"),
    ("take and ack (bulk consumer)", "(worker/consumer.py"),
    ("rest of a job on the loop", "(worker/fastpath.py"),
    ("Celery tasks", "(celery/app/trace.py"),
]
THREADS = [
    ("event loop itself (uvloop: I/O, callbacks)", "twilio-jobs-fastpath"),
    ("thread pool, outside a step", "twilio-jobs-fast"),
    ("Celery's consumer (MainThread)", "MainThread"),
]
LIBS = [
    ("celery", "celery/"),
    ("kombu", "kombu/"),
    ("redis-py", "redis/"),
    ("twilio-python", "twilio/"),
    ("requests", "requests/"),
    ("urllib3", "urllib3/"),
    ("http.client", "http/client.py"),
    ("json", "json/"),
    ("logging", "logging/"),
    ("cryptography", "cryptography/"),
    ("threading/queue", "threading.py"),
    ("socket/ssl", "socket.py"),
    ("our code", "worker/"),
    ("our code", "producer/"),
    ("our code", "twilio_jobs/"),
    ("aiohttp", "aiohttp/"),
    ("asyncio", "asyncio/"),
    ("prometheus_client", "prometheus_client/"),
]


def classify(frames: list[str], table: list[tuple[str, str]], leaf_first: bool) -> str:
    order = reversed(frames) if leaf_first else frames
    for frame in order:
        for label, needle in table:
            if needle in frame:
                return label
    return "other"


def summarize(raw: Path, jobs: int, cpu_ms_per_job: float) -> None:
    steps: Counter[str] = Counter()
    libs: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        step = classify(frames, STEPS, leaf_first=True)
        if step == "other":
            thread = next((f for f in frames if f.startswith("thread (")), "")
            step = classify([thread], THREADS, leaf_first=True)
        steps[step] += n
        libs[classify(frames, LIBS, leaf_first=True)] += n
    if not total:
        print("no samples")
        return
    print(f"{total} samples holding the GIL for {jobs} jobs")
    for title, counter in (("Inclusive, by step", steps), ("Self time, by library", libs)):
        rows = [
            [label, f"{100 * n / total:.1f}%", f"{cpu_ms_per_job * n / total:.3f}"]
            for label, n in counter.most_common()
        ]
        print_table(title, ["where", "share of GIL samples", "CPU-ms/job (share x measured)"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--speedscope", help="also write a speedscope profile here")
    parser.add_argument("--raw", help="keep the collapsed stacks here")
    args = parser.parse_args(argv)
    print(machine_line())
    flush()
    with FakeTwilioProc(latency=args.latency) as fake:
        env = service_env(fake.url)
        apply_env(env)
        bulk_enqueue(args.n)
        conn = connect()
        raw = Path(args.raw or tempfile.mktemp(suffix=".txt", prefix="py-spy-"))
        worker = our_worker(env).start()
        outputs = [("raw", raw)]
        if args.speedscope:
            outputs.append(("speedscope", Path(args.speedscope)))
        spies = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record", "-p", str(worker.pid), "-f", fmt, "-o", str(out),
                    "-r", str(args.rate), "--gil", "--nolineno", "--nonblocking",
                    # the Celery worker under `twilio-jobs worker`, by thread
                    "--subprocesses", "--threads",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for fmt, out in outputs
        ]  # fmt: skip
        t0, cpu0 = time.monotonic(), worker.cpu_seconds()
        try:
            t1 = wait_for(lambda: queue_idle(conn, QUEUE), 120 + args.n / 20, what="drain")
            cpu = worker.cpu_seconds() - cpu0
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            for spy in spies:
                spy.wait(timeout=60)
            worker.stop()
    print(
        f"drained {args.n} jobs in {t1 - t0:.1f}s: {args.n / (t1 - t0):.0f} jobs/s, "
        f"worker CPU {1000 * cpu / args.n:.2f} ms/job"
    )
    summarize(raw, args.n, 1000 * cpu / args.n)
    if not args.raw:
        os.unlink(raw)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
