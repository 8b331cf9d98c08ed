"""kombu's Redis transport without its per-message client construction.

kombu builds a new `redis.Redis` object for every delivery (recording it as unacked) and
every ack; in redis-py 8 each construction fills a response-callback table, which cost about
a tenth of a worker's CPU per job in a profile (docs/benchmarks.md). A `redis.Redis` over a
connection pool is thread-safe, so one per channel (per pool) serves every thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis


class QoS(kombu_redis.QoS):
    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        # Recording a delivery (ZADD index + HSET payload) and an ack (ZREM + HDEL) need one
        # round trip, not MULTI/EXEC: the index is only read for entries older than the
        # visibility timeout, and a missing payload there is skipped.
        if pipe:
            yield pipe
        else:
            with self.channel.conn_or_acquire(client) as conn:
                yield conn.pipeline(transaction=False)


class Channel(kombu_redis.Channel):
    QoS = QoS
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """This transport for plain `redis://` brokers; kombu's own choice for any other."""
    return f"{__name__}:Transport" if urlsplit(broker_url).scheme == "redis" else None
