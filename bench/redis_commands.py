"""Redis commands per job: enqueue N single sends with the client library and drain them with
one worker, while MONITOR records every command on the benchmark database.

    python bench/redis_commands.py [--n 500]

MONITOR costs the server time, so this counts commands; it measures no speed. Commands that
Lua scripts run are listed apart: they cost Redis time but no round trip. The harness's own
polling (LLEN, HLEN) shows up on the worker side.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
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
    our_worker,
    print_table,
    queue_idle,
    service_env,
    wait_for,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args(argv)
    flush()
    db = connect().connection_pool.connection_kwargs.get("db", 0)
    with FakeTwilioProc() as fake:
        env = service_env(fake.url)
        apply_env(env)
        from twilio_jobs.client import Client
        from twilio_jobs.schemas import JobKind

        conn = connect()
        with our_worker(env) as worker:
            time.sleep(1.0)  # let start-up traffic pass
            counts: dict[str, Counter[str]] = {"enqueue": Counter(), "worker": Counter()}
            phase = ["enqueue"]
            stop = threading.Event()

            def record() -> None:
                with connect().monitor() as monitor:
                    for command in monitor.listen():
                        if stop.is_set():
                            return
                        if command.get("db") == db:
                            name = str(command["command"]).split(" ", 1)[0].upper()
                            if command.get("client_type") == "lua":
                                name = f"  (in Lua) {name}"
                            counts[phase[0]][name] += 1

            thread = threading.Thread(target=record, daemon=True)
            thread.start()
            time.sleep(0.5)
            client = Client()
            # Hold the worker's intake: enqueue first, count, then let it drain.
            worker.proc.send_signal(19)  # SIGSTOP  # type: ignore[union-attr]
            for _ in range(args.n):
                client.submit(JobKind.sendSms, SMS)
            time.sleep(0.5)
            phase[0] = "worker"
            worker.proc.send_signal(18)  # SIGCONT  # type: ignore[union-attr]
            wait_for(lambda: queue_idle(conn, QUEUE), 120, what="drained")
            time.sleep(0.5)
            stop.set()
            conn.ping()  # wakes the monitor so it sees the stop
            thread.join(timeout=5)
            client.close()
    flush()
    for phase_name, counter in counts.items():
        rows = [[name, n, n / args.n] for name, n in counter.most_common()]
        rows.append(["all", sum(counter.values()), sum(counter.values()) / args.n])
        print_table(
            f"Redis commands on db {db}, {phase_name} side ({args.n} jobs)",
            ["command", "count", "per job"],
            rows,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
