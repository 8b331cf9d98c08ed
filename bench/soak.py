"""Soak: a steady rate of single sends for a long time, with Twilio faults and a flapping
webhook receiver mixed in; worker RSS and Redis memory over time, and what was lost or sent twice.

Everything on this machine: a Redis of its own (no persistence), the fake Twilio, two workers
(`twilio-jobs worker`: threads x64 and the bulk consumer), and this process sending through
`Client.submit` at `--rate` jobs/s. Every 10 s the fake is told to answer five creates with a
503 and five with a 500 *after* creating the message (ambiguous: reconciled, never sent again),
and every 60 s one with a 429 (Retry-After 1). Each 429 halves the account's in-flight limit
(AIMD, recovering 1 a second) and holds its sends for the Retry-After second: with a 429 every
10 s the limit stayed between 9 and 20 and the account sent about 180 of the 200 jobs/s
offered (measured), the service slowing down as Twilio asks, not running out of capacity.
Every `--callback-every`th job (default 4: a quarter; 1: all)
has a `callbackUrl` on a receiver here that answers 200 for 20 s, then 500 for 10 s, in turn.
A result webhook is a Celery task of its own and costs about twice a send's CPU
(docs/benchmarks.md), so with one on every job two workers on two shared cores keep up with
about 145 jobs/s, not 200. Records are kept `--result-ttl` seconds
(TWILIO_JOBS_RESULT_TTL; 300 here, so that they expire within the run; the service's default
is 7 days). The sender's rate limit is lifted (TWILIO_JOBS_SENDER_RATES), as for a short
code, and the account may have `--account-in-flight` requests in flight (50), as an operator
sending 200/s would set it. Everything else is default.

Lost: an accepted job whose recipient never got a message; duplicated: one that got two.

    nice python bench/soak.py [--minutes 30] [--rate 200] [--sample 30] [--result-ttl 300]
                              [--callback-every 4] [--account-in-flight 50]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from bench.harness import (  # noqa: E402
    SMS,
    FakeTwilioProc,
    Proc,
    apply_env,
    free_port,
    machine_line,
    our_worker,
    print_table,
    service_env,
)
from bench.replicas import redis_server  # noqa: E402

FAULT_EVERY = 10.0
FAULTS = (  # every FAULT_EVERY seconds; each takes the next create(s) at the fake
    {"status": 503, "count": 5},
    {"status": 500, "count": 5, "create_anyway": True},  # created, then a 500: reconciled
)
THROTTLE_EVERY = 60.0
THROTTLE = {"status": 429, "retry_after": 1}  # every THROTTLE_EVERY seconds


class FlappingReceiver:
    """A webhook receiver that answers 200 for `up` seconds, then 500 for `down` seconds."""

    def __init__(self, up: float = 20.0, down: float = 10.0) -> None:
        self.up, self.down = up, down
        self.started = time.monotonic()
        self.accepted: Counter[str] = Counter()
        self.refused = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as a receiver behind any web server answers: a connection per
            # webhook would measure TCP set-up in the workers, not the service.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                phase = (time.monotonic() - receiver.started) % (receiver.up + receiver.down)
                ok = phase < receiver.up
                with receiver.lock:
                    if ok:
                        receiver.accepted[json.loads(body).get("jobId", "")] += 1
                    else:
                        receiver.refused += 1
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between readings")
    parser.add_argument("--result-ttl", type=int, default=300)
    parser.add_argument("--callback-every", type=int, default=4, help="1: every job a webhook")
    parser.add_argument("--account-in-flight", type=int, default=50)
    args = parser.parse_args(argv)
    print(machine_line())
    workdir = Path(tempfile.mkdtemp(prefix="twilio-jobs-soak-"))
    server, port = redis_server(workdir)
    conn = redis.Redis(port=port, decode_responses=True)
    receiver = FlappingReceiver()
    samples: list[list[object]] = []
    workers: list[Proc] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children on a kill
    try:
        with FakeTwilioProc(latency=0.05) as fake:
            env = service_env(
                fake.url,
                REDIS_URL=f"redis://127.0.0.1:{port}/0",
                TWILIO_JOBS_RESULT_TTL=str(args.result_ttl),
                TWILIO_JOBS_SENDER_RATES=json.dumps({SMS["from"]: 0}),
                TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT=str(args.account_in_flight),
                TWILIO_JOBS_WEBHOOK_ALLOW_PRIVATE="true",
            )
            apply_env(env)
            from twilio_jobs.client import Client
            from twilio_jobs.schemas import JobKind

            workers = [our_worker(env, name=f"soak-{n}") for n in range(2)]
            for worker in workers:
                worker.start()
            baseline = int(conn.info("memory")["used_memory"])
            client = Client()
            sent: list[str] = []
            refused = 0
            started = time.monotonic()
            end = started + args.minutes * 60
            next_fault = next_sample = next_throttle = started
            next_send = started
            print(f"soak: {args.minutes:g} min at {args.rate:g}/s; baseline used_memory "
                  f"{baseline / 1e6:.1f} MB")  # fmt: skip
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_fault:
                    for fault in FAULTS:
                        fake.control("faults", **fault)
                    next_fault += FAULT_EVERY
                if now >= next_throttle:
                    fake.control("faults", **THROTTLE)
                    next_throttle += THROTTLE_EVERY
                if now >= next_sample:
                    row = reading(now - started, workers, conn, len(sent), fake)
                    samples.append(row)
                    print("  ".join(str(x) for x in row), flush=True)
                    next_sample += args.sample
                to = f"+1415{len(sent):07d}"
                hook = {"callbackUrl": receiver.url} if len(sent) % args.callback_every == 0 else {}
                try:
                    client.submit(
                        JobKind.sendSms, {**SMS, "to": to, "body": f"soak {len(sent)}", **hook}
                    )
                    sent.append(to)
                except Exception:  # counted: a refused request is not an accepted job
                    refused += 1
                next_send += 1 / args.rate
                pause = next_send - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            sending_took = time.monotonic() - started
            # Drain: every accepted job's recipient has a message, or 10 minutes pass.
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and fake.stats()["messages_count"] < len(sent):
                time.sleep(2)
            samples.append(reading(time.monotonic() - started, workers, conn, len(sent), fake))
            with urllib.request.urlopen(f"{fake.url}/_fake/messages", timeout=120) as resp:
                messages = json.loads(resp.read())
            per_to = Counter(m["to"] for m in messages)
            lost = sum(1 for to in sent if per_to[to] == 0)
            duplicated = sum(1 for to in sent if per_to[to] > 1)
            stats = fake.stats()
            drained_mem = int(conn.info("memory")["used_memory"])
            # Records expire: wait out the TTL (and the webhook records' own) and read again.
            expire_deadline = time.monotonic() + args.result_ttl + 120
            while time.monotonic() < expire_deadline and conn.dbsize() > 50:
                time.sleep(5)
            expired_mem = int(conn.info("memory")["used_memory"])
            keys_left = conn.dbsize()
            client.close()
    finally:
        for worker in workers:
            worker.stop()
        receiver.server.shutdown()
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(
        "Soak: readings over time",
        ["t s", "jobs accepted", "creates at the fake", "worker RSS MB (each)",
         "Redis used_memory MB", "Redis keys"],
        samples,
    )  # fmt: skip
    first_rss = samples[1][3] if len(samples) > 1 else samples[0][3]
    print_table(
        f"Soak summary ({args.minutes:g} min of sending at {args.rate:g}/s, "
        f"took {sending_took:.0f} s; result TTL {args.result_ttl} s; "
        f"a webhook on 1 job in {args.callback_every}; account in-flight {args.account_in_flight})",
        ["accepted", "refused", "lost", "duplicated", "creates", "create attempts",
         "429s", "webhook 2xx (jobs)", "webhook 500s", "RSS first -> last MB",
         "used_memory baseline / drained / after expiry MB", "keys left"],
        [[len(sent), refused, lost, duplicated, stats["created_count"],
          stats["create_attempts"], stats["throttled_total"],
          f"{sum(receiver.accepted.values())} ({len(receiver.accepted)})", receiver.refused,
          f"{first_rss} -> {samples[-1][3]}",
          f"{baseline / 1e6:.1f} / {drained_mem / 1e6:.1f} / {expired_mem / 1e6:.1f}",
          keys_left]],
    )  # fmt: skip
    return 0


def reading(
    t: float, workers: list[Proc], conn: redis.Redis, accepted: int, fake: FakeTwilioProc
) -> list[object]:
    rss = "/".join(f"{w.rss_mb():.0f}" for w in workers)
    info = conn.info("memory")
    return [
        round(t),
        accepted,
        fake.stats()["created_count"],
        rss,
        round(int(info["used_memory"]) / 1e6, 1),
        conn.dbsize(),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
