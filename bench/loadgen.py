"""A small HTTP/1.1 load generator: C keep-alive connections, N requests in all, one JSON body.

Run as its own process so that it does not share a GIL with the server under test:

    python -m bench.loadgen http://127.0.0.1:8000/api/twilio/sendSms --connections 64 \
        --requests 20000 --body '{"to": "..."}'

Prints one JSON object: requests, seconds, req_per_s, p50_ms, p99_ms, max_ms, statuses.
Raw asyncio streams (uvloop when present) cost a few tens of microseconds per request, far
below what the servers measured here spend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _connection(
    host: str, port: int, request: bytes, quota: list[int], latencies: list[float],
    statuses: dict[int, int], deadline: float,
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while quota[0] > 0 and time.monotonic() < deadline:
            quota[0] -= 1
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run(
    url: str, connections: int, requests: int, body: bytes, max_seconds: float
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    quota = [requests]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    deadline = time.monotonic() + max_seconds
    await asyncio.gather(
        *(
            _connection(host, port, request, quota, latencies, statuses, deadline)
            for _ in range(connections)
        )
    )
    seconds = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))]

    return {
        "requests": len(latencies),
        "seconds": seconds,
        "req_per_s": len(latencies) / seconds,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": 1000 * latencies[-1],
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--body", default="{}")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    work = run(args.url, args.connections, args.requests, args.body.encode(), args.max_seconds)
    try:
        import uvloop

        result = uvloop.run(work)
    except ImportError:
        result = asyncio.run(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
