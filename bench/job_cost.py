"""The per-job inputs of docs/scaling.md: worker CPU, Redis CPU, Redis memory and network bytes
per single send and per campaign job, measured over a drain of N jobs.

    python bench/job_cost.py [--n 5000] [--latency 0.1] [--rounds 1]

Starts a Redis of its own (a temporary directory, a free port: its INFO counters are this
run's alone), the fake Twilio, and a byte-counting TCP proxy in front of the fake (the workers'
TWILIO_API_BASE_URL), so that the bytes each job sends to and receives from Twilio are counted
on the wire (plain HTTP on loopback; TLS and TCP/IP overhead are estimated in the document).

For each kind (single sends: `Client.submit` N times, then one worker drains them; a campaign
of N: `Client.create_campaign`, then two workers, in-flight 100), from Redis INFO before and
after each phase:

- Redis CPU (`used_cpu_sys_main_thread + used_cpu_user_main_thread`: the thread that runs
  every command and script, the one that caps a Redis) and the commands' own time
  (`INFO commandstats`, `usec`), per job;
- Redis network (`total_net_input_bytes`, `total_net_output_bytes`), per job;
- Redis memory (`used_memory`) per queued job (record, indexes, schedule and task message) and
  per finished record (after the drain: what stays for TWILIO_JOBS_RESULT_TTL);
- worker CPU per job (user + system of the worker processes, from ready to drained);
- Twilio bytes per job (request and response, counted by the proxy).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def free_port() -> int:
    # bench.harness reads BENCH_REDIS_URL when imported: it is imported once the private Redis
    # is up and the variable points at it.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- a Redis of its own ------------------------------------------------------------------------


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tj-jobcost-"))
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.dir), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(host="127.0.0.1", port=self.port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- a byte-counting proxy in front of the fake Twilio -----------------------------------------


class CountingProxy:
    """TCP proxy on a free loopback port to `target_port`; counts bytes each way."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.up = 0  # client -> Twilio (requests)
        self.down = 0  # Twilio -> client (responses)
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._server = server
        self._ready.set()
        self._loop.run_forever()

    async def _pipe(self, reader: Any, writer: Any, up: bool) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if up:
                    self.up += len(data)
                else:
                    self.down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: Any, writer: Any) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(
            self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> tuple[int, int]:
        return self.up, self.down

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# -- INFO readings -----------------------------------------------------------------------------


@dataclass
class Info:
    cpu: float  # main thread, s
    cpu_all: float  # every thread, s
    usec: int  # commandstats, sum of usec
    calls: int  # commandstats, sum of calls
    net_in: int
    net_out: int
    memory: int
    keys: int
    commands: dict[str, tuple[int, int]]  # name -> (calls, usec)

    @classmethod
    def read(cls, conn: Any) -> Info:
        info = conn.info("all")
        usec = calls = 0
        commands = {}
        for name, value in info.items():
            if name.startswith("cmdstat_") and isinstance(value, dict):
                usec += int(value["usec"])
                calls += int(value["calls"])
                commands[name[len("cmdstat_") :]] = (int(value["calls"]), int(value["usec"]))
        db = info.get("db0", {})
        return cls(
            cpu=float(info["used_cpu_sys_main_thread"]) + float(info["used_cpu_user_main_thread"]),
            cpu_all=float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
            usec=usec,
            calls=calls,
            net_in=int(info["total_net_input_bytes"]),
            net_out=int(info["total_net_output_bytes"]),
            memory=int(info["used_memory"]),
            keys=int(db.get("keys", 0)) if isinstance(db, dict) else 0,
            commands=commands,
        )


def top_commands(a: Info, b: Info, n: int, k: int = 8) -> list[tuple[str, float, float]]:
    """The commands that took the most Redis time between two readings: (name, calls/job,
    usec/job). Commands run by scripts are counted under their own names too."""
    out = []
    for name, (calls, usec) in b.commands.items():
        calls0, usec0 = a.commands.get(name, (0, 0))
        out.append((name, (calls - calls0) / n, (usec - usec0) / n))
    return sorted(out, key=lambda x: -x[2])[:k]


def delta(a: Info, b: Info, n: int) -> dict[str, float]:
    return {
        "redis_cpu_us": (b.cpu - a.cpu) * 1e6 / n,
        "redis_cpu_all_us": (b.cpu_all - a.cpu_all) * 1e6 / n,
        "cmd_usec": (b.usec - a.usec) / n,
        "cmd_calls": (b.calls - a.calls) / n,
        "net_in_b": (b.net_in - a.net_in) / n,
        "net_out_b": (b.net_out - a.net_out) / n,
    }


# -- the phases --------------------------------------------------------------------------------


IDLE_SECONDS = 5.0


class Receiver:
    """A webhook receiver on a free loopback port: answers 200, counts requests and bytes."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self.requests = 0
        self.bytes = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                head = len(self.requestline) + 2 + len(str(self.headers)) + 2
                receiver.requests += 1
                receiver.bytes += head + len(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()


def measure(kind: str, n: int, latency: float, proxy: CountingProxy, fake: Any,
            receiver: Receiver) -> dict[str, Any]:  # fmt: skip
    from bench import campaign_slot
    from bench.harness import (
        QUEUE,
        SMS,
        apply_env,
        connect,
        flush,
        our_worker,
        service_env,
        wait_for,
    )
    from twilio_jobs import keys

    flush()
    fake.reset()
    extra = {"TWILIO_JOBS_SENDER_RATES": json.dumps({SMS["from"]: 0})}
    if kind == "campaign":
        extra["TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT"] = "100"
    if kind == "webhook":  # the receiver is on loopback; deliveries signed as in production
        extra["TWILIO_JOBS_WEBHOOK_ALLOW_PRIVATE"] = "1"
        extra["TWILIO_JOBS_WEBHOOK_SECRET"] = "whsec_" + base64.b64encode(b"b" * 32).decode()
    env = service_env(proxy.url, **extra)
    apply_env(env)
    from twilio_jobs.client import Client
    from twilio_jobs.schemas import JobKind

    def enqueue() -> float:
        client = Client()
        t0 = time.monotonic()
        if kind in ("single", "webhook"):
            hook = {"callbackUrl": receiver.url} if kind == "webhook" else {}
            for i in range(n):
                client.submit(JobKind.sendSms, {**SMS, **hook, "to": f"+1415{3000000 + i:07d}"})
        else:
            campaign_slot.create(client, n)
        client.close()
        return time.monotonic() - t0

    # A: accepting N jobs with no worker running: the enqueue side, the queued jobs' memory.
    conn = connect()
    conn.config_resetstat()
    time.sleep(0.2)
    base = Info.read(conn)
    enqueue_s = enqueue()
    queued = Info.read(conn)
    queue_bytes = int(conn.memory_usage(QUEUE, samples=0) or 0)

    # B: the same with the workers running (started first, as drain.py's campaign row does:
    # a worker may start on its queue before it reports ready). The drain side is B less A.
    flush()
    fake.reset()
    processes = 2 if kind == "campaign" else 1
    workers = [our_worker(env, name=f"{kind}{i}") for i in range(processes)]

    def drained() -> bool:
        if kind == "webhook" and receiver.requests - hooks0 < n:
            return False
        return int(conn.hget(keys.STATS, "ended:succeeded") or 0) >= n

    try:
        for worker in workers:
            worker.start()
        time.sleep(0.5)  # start-up traffic (script loads, first heartbeats) out of the way
        # Redis's own CPU with the workers idle (heartbeats, their waits on empty queues,
        # serverCron): part of every second of a drain, whatever the jobs.
        idle0 = Info.read(conn)
        time.sleep(IDLE_SECONDS)
        start = Info.read(conn)
        idle_rate = (start.cpu - idle0.cpu) / IDLE_SECONDS
        up0, down0 = proxy.counts()
        hooks0, hook_bytes0 = receiver.requests, receiver.bytes
        t1 = time.monotonic()
        cpu0 = [w.cpu_seconds() for w in workers]
        enqueue()
        wait_for(drained, 120 + n / 10, interval=0.1, what=f"{kind} drained")
        t2 = time.monotonic()
        cpu = sum(w.cpu_seconds() - c for w, c in zip(workers, cpu0, strict=True))
        end = Info.read(conn)
        up1, down1 = proxy.counts()
        # let the last acks land before the memory reading
        wait_for(lambda: conn.llen(QUEUE) == 0 and conn.hlen("unacked") == 0, 30)
        if kind == "webhook":  # the deliveries' acks and their leases settled
            wait_for(lambda: not conn.zcard(keys.WEBHOOK_SCHEDULE), 60)
    finally:
        for worker in workers:
            worker.stop()
    created = fake.stats()["created_count"]
    if created != n:
        raise RuntimeError(f"{kind}: the fake created {created} for {n} jobs")
    time.sleep(0.2)
    final = Info.read(conn)
    breakdown = {}
    parts = (("records", "tj:job:*"), ("indexes", "tj:ix:*"), ("sids", "tj:sid:*"),
             ("webhooks", "tj:webhook:*"))  # fmt: skip
    for name, pattern in parts:
        total = count = 0
        for key in conn.scan_iter(pattern, count=1000):
            total += int(conn.memory_usage(key, samples=0) or 0)
            count += 1
        breakdown[name] = (total / n, count)
    other_keys = final.keys - sum(c for _, c in breakdown.values())
    conn.close()
    return {
        "kind": kind,
        "n": n,
        "enqueue_s": enqueue_s,
        "drain_s": t2 - t1,  # enqueue and drain, overlapped
        "top_enqueue": top_commands(base, queued, n),
        "top_all": top_commands(start, end, n),
        "rate": n / (t2 - t1),
        "worker_cpu_ms": cpu * 1000 / n,
        "redis_idle_cpu_per_s": idle_rate * 1000,  # ms per second
        "redis_cpu_us_less_idle": ((end.cpu - start.cpu) - idle_rate * (t2 - t1)) * 1e6 / n
        - delta(base, queued, n)["redis_cpu_us"],
        "enqueue": delta(base, queued, n),
        "drain": {k: v - delta(base, queued, n)[k] for k, v in delta(start, end, n).items()},
        "queued_mem_b": (queued.memory - base.memory) / n,
        "queue_msg_b": queue_bytes / n,
        "final_mem_b": (final.memory - start.memory) / n,
        "breakdown": breakdown,
        "other_keys": other_keys,
        "twilio_up_b": (up1 - up0) / n,
        "twilio_down_b": (down1 - down0) / n,
        "twilio_connections": proxy.connections,
        "webhook_b": (receiver.bytes - hook_bytes0) / n,
    }


LABELS = {
    "single": "single sends (1 worker)",
    "campaign": "campaign (2 workers, in-flight 100)",
    "webhook": "single sends + result webhook (1 worker)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; medians")
    parser.add_argument("--only", choices=["single", "campaign", "webhook"], action="append",
                        help="single sends, a campaign, sends with a callbackUrl")  # fmt: skip
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args(argv)
    store = PrivateRedis()
    os.environ["BENCH_REDIS_URL"] = store.url
    from bench.harness import FakeTwilioProc, machine_line, print_table

    print(machine_line().replace("redis redis://127.0.0.1:6379/13", f"redis {store.url}"))
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        with FakeTwilioProc(latency=args.latency) as fake:
            proxy = CountingProxy(fake.port)
            receiver = Receiver()
            try:
                for _ in range(args.rounds):
                    for kind in args.only or ["single", "campaign"]:
                        results.setdefault(kind, []).append(
                            measure(kind, args.n, args.latency, proxy, fake, receiver)
                        )
            finally:
                proxy.stop()
                receiver.stop()
    finally:
        store.stop()

    def med(kind: str, *path: str) -> float:
        values = []
        for r in results[kind]:
            v: Any = r
            for p in path:
                v = v[p]
            values.append(float(v[0] if isinstance(v, tuple) else v))
        return statistics.median(values)

    rows = []
    spec = [
        ("drain: jobs/s", ("rate",)),
        ("worker CPU-ms/job", ("worker_cpu_ms",)),
        ("Redis main-thread CPU-us/job, enqueue", ("enqueue", "redis_cpu_us")),
        ("Redis main-thread CPU-us/job, drain", ("drain", "redis_cpu_us")),
        ("... less Redis's idle CPU over the drain's seconds", ("redis_cpu_us_less_idle",)),
        ("Redis idle CPU with the workers waiting, ms/s", ("redis_idle_cpu_per_s",)),
        ("Redis commandstats usec/job, enqueue", ("enqueue", "cmd_usec")),
        ("Redis commandstats usec/job, drain", ("drain", "cmd_usec")),
        ("Redis commands/job (with those scripts run), enqueue", ("enqueue", "cmd_calls")),
        ("Redis commands/job (with those scripts run), drain", ("drain", "cmd_calls")),
        ("Redis bytes in/job, enqueue", ("enqueue", "net_in_b")),
        ("Redis bytes out/job, enqueue", ("enqueue", "net_out_b")),
        ("Redis bytes in/job, drain", ("drain", "net_in_b")),
        ("Redis bytes out/job, drain", ("drain", "net_out_b")),
        ("Redis memory/queued job, B (with its task message)", ("queued_mem_b",)),
        ("... of which the task messages (MEMORY USAGE of the queue)", ("queue_msg_b",)),
        ("Redis memory/finished job, B (after the drain)", ("final_mem_b",)),
        ("... records (MEMORY USAGE tj:job:*)", ("breakdown", "records")),
        ("... indexes (MEMORY USAGE tj:ix:*)", ("breakdown", "indexes")),
        ("... SID keys (MEMORY USAGE tj:sid:*)", ("breakdown", "sids")),
        ("... webhook deliveries (MEMORY USAGE tj:webhook:*)", ("breakdown", "webhooks")),
        ("Twilio request bytes/job (HTTP, on the wire)", ("twilio_up_b",)),
        ("Twilio response bytes/job", ("twilio_down_b",)),
        ("result webhook request bytes/job (HTTP)", ("webhook_b",)),
    ]
    kinds = list(results)
    for label, path in spec:
        rows.append([label, *(med(k, *path) for k in kinds)])
    print_table(
        f"Per-job cost, N={args.n:,}, fake Twilio at {args.latency * 1000:.0f} ms, "
        f"median of {args.rounds} round(s)",
        ["figure", *(LABELS[k] for k in kinds)],
        rows,
    )  # fmt: skip
    for kind in kinds:
        for r in results[kind]:
            print(f"{kind}: {r['n']:,} jobs, enqueue {r['enqueue_s']:.1f} s, drain "
                  f"{r['drain_s']:.1f} s ({r['rate']:.0f}/s), worker {r['worker_cpu_ms']:.2f} "
                  f"CPU-ms/job, Redis {r['drain']['redis_cpu_us']:.0f} us/job, keys left "
                  f"besides records/indexes/SIDs: {r['other_keys']}")  # fmt: skip
    for kind in kinds:
        r = results[kind][-1]
        print_table(
            f"{kind}: Redis time by command, enqueue + drain (last round; script commands also "
            "counted inside their EVALSHA)",
            ["command", "calls/job", "usec/job"],
            r["top_all"],
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
