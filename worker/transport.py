"""The two transports under `twilio_jobs.twilio.api`: they move a `Request`'s bytes and hand
back an `Answer`, or raise what `twilio_jobs.twilio.wire` says a missing answer means.

- `HttpTransport` (the single-send threads): keep-alive pools over http.client, one per
  origin (`worker.http_pool`), about half urllib3's CPU per request (docs/benchmarks.md).
- `AioTransport` (the campaign fast path's event loop): one aiohttp session per process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from urllib.parse import urlsplit

import aiohttp

from twilio_jobs.errors import SendError
from twilio_jobs.twilio.wire import Answer, Request, lost_after_sending, not_sent, read_timeout
from worker.http_pool import HostPool
from worker.metrics import TWILIO_SECONDS


class HttpTransport:
    def __init__(self, pool_size: int, connect_timeout: float, read_timeout: float) -> None:
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._pools: dict[str, HostPool] = {}
        self._lock = threading.Lock()

    def send(self, request: Request) -> Answer:
        parts = urlsplit(request.url)
        origin = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get(origin)
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault(
                    origin,
                    HostPool(origin, self.pool_size, self.connect_timeout, self.read_timeout),
                )
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        started = time.perf_counter()
        try:
            reply = pool.request(request.method, target, request.body, request.headers)
        finally:
            TWILIO_SECONDS.labels(request.method).observe(time.perf_counter() - started)
        return Answer(reply.status, reply.body, reply.headers)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def classify_aiohttp_error(exc: BaseException) -> SendError:
    """Did the request leave this machine? If it may have, the outcome is ambiguous."""
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return not_sent(type(exc).__name__)
    if isinstance(exc, aiohttp.SocketTimeoutError | asyncio.TimeoutError):
        return read_timeout()
    return lost_after_sending(type(exc).__name__)


class AioTransport:
    """Create it inside the event loop that will use it (aiohttp sessions belong to a loop)."""

    def __init__(self, pool_size: int, connect_timeout: float, read_timeout: float) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool_size, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout),
            skip_auto_headers=("User-Agent",),
        )

    async def send(self, request: Request) -> Answer:
        started = time.perf_counter()
        try:
            async with self.session.request(
                request.method, request.url, data=request.body, headers=request.headers
            ) as response:
                body = await response.read()
                return Answer(response.status, body, response.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise classify_aiohttp_error(exc) from None
        finally:
            TWILIO_SECONDS.labels(request.method).observe(time.perf_counter() - started)

    async def close(self) -> None:
        await self.session.close()
