"""Redis memory per job: single sends through the client library and one campaign, the job
records, their schedule entries and (once they exist) the search indexes (`tj:ix:*`), with the
broker's task messages left out.

    python bench/index_cost.py [--n 5000]

Point BENCH_REDIS_URL at a Redis of its own: `used_memory` is the whole server's. Run it from
an older checkout (its own `bench/` with this file copied in) for the figures before.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    QUEUE,
    REDIS_URL,
    SECRET_KEY,
    SMS,
    apply_env,
    connect,
    flush,
    print_table,
)


def usage(conn: object, pattern: str) -> int:
    total = 0
    for key in conn.scan_iter(pattern, count=1000):  # type: ignore[attr-defined]
        total += int(conn.memory_usage(key, samples=0) or 0)  # type: ignore[attr-defined]
    return total


def measure(label: str, write: object, n: int) -> list[str]:
    conn = connect()
    flush()
    conn.memory_purge() if hasattr(conn, "memory_purge") else None
    before = int(conn.info("memory")["used_memory"])
    write()  # type: ignore[operator]
    conn.delete(QUEUE)  # the broker's task messages are not the job store's cost
    after = int(conn.info("memory")["used_memory"])
    records = usage(conn, "tj:job:*")
    indexes = usage(conn, "tj:ix:*")
    keys = sum(1 for _ in conn.scan_iter("tj:ix:*", count=1000))
    conn.close()
    return [
        label,
        f"{(after - before) / n:,.0f}",
        f"{records / n:,.0f}",
        f"{indexes / n:,.0f}",
        str(keys),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000)
    args = parser.parse_args(argv)
    n = args.n
    apply_env(
        {"REDIS_URL": REDIS_URL, "TWILIO_JOBS_SECRET_KEY": SECRET_KEY, "TWILIO_API_BASE_URL": ""}
    )
    from twilio_jobs.client import Client
    from twilio_jobs.schemas import JobKind

    client = Client()
    numbers = [f"+1415{2000000 + i:07d}" for i in range(n)]

    def singles() -> None:
        for to in numbers:
            client.submit(JobKind.sendSms, {**SMS, "to": to})

    def campaign() -> None:
        client.create_campaign(
            account_sid=ACCOUNT_SID,
            account_token=AUTH_TOKEN,
            from_=SMS["from"],
            body="benchmark {{name}}",
            recipients=[{"to": to, "name": str(i)} for i, to in enumerate(numbers)],
        )

    rows = [measure(f"{n:,} single sends", singles, n), measure(f"campaign of {n:,}", campaign, n)]
    client.close()
    print_table(
        "Redis memory per job (task messages left out)",
        ["jobs", "used_memory/job (B)", "records/job (B)", "indexes/job (B)", "index keys"],
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
