"""Enqueue: POST /api/twilio/sendSms under concurrent load from a separate process, next to a
trivial FastAPI route served the same way; the client library's direct enqueue rate; and, when
campaigns exist, accepting a 100,000-recipient campaign against the same jobs one by one.

Both apps run under the same uvicorn command (one process, uvloop, httptools, no access log);
the load generator (bench/loadgen.py) is its own process. No worker runs: jobs stay queued.
Prints issue 15's GOAL lines for the route's share of the trivial route and its p99.

    python bench/enqueue.py [--requests 20000] [--connections 64] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import campaign_slot, goals  # noqa: E402
from bench.harness import (  # noqa: E402
    PY,
    SMS,
    FakeTwilioProc,
    Proc,
    apply_env,
    flush,
    free_port,
    machine_line,
    print_table,
    service_env,
)

UVICORN = ["--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]


def serve(factory: str, env: dict[str, str]) -> tuple[Proc, int]:
    port = free_port()
    argv = [PY, "-m", "uvicorn", "--factory", factory, "--port", str(port), *UVICORN]
    return Proc("api", argv, env, ready=["Application startup complete"]).start(), port


def load(url: str, requests: int, connections: int) -> dict[str, float]:
    argv = [PY, "-m", "bench.loadgen", url, "--connections", str(connections)]
    argv += ["--requests", str(requests), "--body", json.dumps(SMS)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=300)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def measure_routes(
    routes: list[tuple[str, str, str]], env: dict[str, str], requests: int, connections: int,
    rounds: int,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Load each route in turn, `rounds` times, alternating the order; the median round of
    each route (by req/s) is reported, so that a burst of load from elsewhere on the machine
    does not decide the comparison."""
    servers = [(name, *serve(factory, env), path) for name, factory, path in routes]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in servers}
    try:
        for _, _, port, path in servers:
            load(f"http://127.0.0.1:{port}{path}", min(1_000, requests), connections)  # warm up
        for i in range(rounds):
            for name, server, port, path in servers[:: 1 if i % 2 == 0 else -1]:
                cpu0 = server.cpu_seconds()
                result = load(f"http://127.0.0.1:{port}{path}", requests, connections)
                result["server_cpu_ms"] = 1000 * (server.cpu_seconds() - cpu0) / result["requests"]
                runs[name].append(result)
    finally:
        for _, server, _, _ in servers:
            server.stop()
    return {
        name: sorted(rs, key=lambda r: r["req_per_s"])[len(rs) // 2] for name, rs in runs.items()
    }


def library_rate(n: int) -> tuple[float, float]:
    """`Client.submit` in a loop in this process: jobs/s and CPU-ms per job."""
    from twilio_jobs.client import Client
    from twilio_jobs.schemas import JobKind

    client = Client()
    for _ in range(200):
        client.submit(JobKind.sendSms, SMS)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        client.submit(JobKind.sendSms, SMS)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    client.close()
    return n / seconds, 1000 * cpu / n


def campaign_accept(n: int) -> float:
    """CAMPAIGN SLOT: seconds to accept one n-recipient campaign through the library."""
    from twilio_jobs.client import Client

    client = Client()
    t0 = time.perf_counter()
    campaign_slot.create(client, n)
    seconds = time.perf_counter() - t0
    client.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--library-n", type=int, default=5_000)
    parser.add_argument("--campaign-n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5,000 requests, 2,000 jobs")
    args = parser.parse_args(argv)
    requests = 5_000 if args.quick else args.requests
    library_n = 2_000 if args.quick else args.library_n
    print(machine_line())
    with FakeTwilioProc() as fake:  # only for the settings; no worker sends anything
        env = service_env(fake.url)
        apply_env(env)
        flush()
        results = measure_routes(
            [
                ("trivial FastAPI route", "bench.apps:trivial_app", "/trivial"),
                (
                    "sendSms via FastAPI parameters, no enqueue",
                    "bench.apps:validate_only_app",
                    "/api/twilio/sendSms",
                ),
                ("POST /api/twilio/sendSms", "producer.api:create_app", "/api/twilio/sendSms"),
            ],
            env,
            requests,
            args.connections,
            args.rounds,
        )
        flush()
        trivial, ours = results["trivial FastAPI route"], results["POST /api/twilio/sendSms"]
        rows = [
            [name, r["requests"], args.connections, r["req_per_s"], r["p50_ms"], r["p99_ms"],
             r["max_ms"], r["server_cpu_ms"], json.dumps(r["statuses"])]
            for name, r in results.items()
        ]  # fmt: skip
        print_table(
            f"Enqueue over HTTP (uvicorn, 1 process, uvloop + httptools; median of {args.rounds} "
            "rounds)",
            ["route", "requests", "connections", "req/s", "p50 ms", "p99 ms", "max ms",
             "server CPU-ms/req", "statuses"],
            rows,
        )  # fmt: skip
        share = 100 * ours["req_per_s"] / trivial["req_per_s"]
        print(f"sendSms / trivial route: {share:.0f}%")
        of = f"median of {args.rounds} rounds, {requests:,} requests"
        goals.emit(
            "enqueue_vs_trivial",
            share,
            f"{ours['req_per_s']:,.0f} vs {trivial['req_per_s']:,.0f} req/s, {of}",
        )
        goals.emit("enqueue_p99_ms", ours["p99_ms"], f"p50 {ours['p50_ms']:.1f} ms, {of}")
        rate, cpu_ms = library_rate(library_n)
        flush()
        print_table(
            "Enqueue from Python (producer.Client.submit, one thread)",
            ["path", "jobs", "jobs/s", "CPU-ms/job"],
            [["Client.submit", library_n, rate, cpu_ms]],
        )
        if campaign_slot.available():
            seconds = campaign_accept(args.campaign_n)
            flush()
            one_by_one = args.campaign_n / ours["req_per_s"]
            print_table(
                f"Accepting a {args.campaign_n:,}-recipient campaign",
                ["how", "seconds", "jobs/s"],
                [
                    ["one campaign (Client.create_campaign)", seconds, args.campaign_n / seconds],
                    [f"posted one by one (extrapolated from {ours['requests']:,} at "
                     f"{args.connections} connections)", one_by_one, ours["req_per_s"]],
                ],
            )  # fmt: skip
            print(f"campaign / one by one: {one_by_one / seconds:.1f}x faster")
        else:
            print("campaign acceptance: not built yet (bench/campaign_slot.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
