"""Redis connections, built in one place from the URLs in the settings.

`REDIS_URL` (and a Redis `BROKER_URL`) take any URL redis-py takes (`redis://`, `rediss://`,
`unix://`) or one that names Redis Sentinels and the master they watch::

    redis+sentinel://[user:password@]host:port[,host:port...]/<master-name>[/<db>]

e.g. `redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster/0` (port 26379
when left out; `rediss+sentinel://` for TLS to the master). The user and password are the
master's; the sentinels are asked without them. Every client then finds the master through the
sentinels (redis-py's `Sentinel.master_for`), and moves to a new one as soon as a sentinel
announces it (`+switch-master`, below).

For the Celery broker the same URL becomes kombu's `sentinel://` transport with the master name
in its transport options (`broker`); kombu's own form is taken too, with the master name as a
query parameter: `sentinel://host:26379;sentinel://host2:26379/0?master_name=mymaster`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelManagedConnection
from redis.connection import HiredisRespSerializer
from redis.exceptions import RedisError
from redis.sentinel import Sentinel, SentinelManagedConnection
from redis.utils import HIREDIS_AVAILABLE

from twilio_jobs import keys

SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
KOMBU_SENTINEL = "sentinel"
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", *SENTINEL_SCHEMES, KOMBU_SENTINEL})
"""Every URL scheme that names a Redis (the broker too: task messages are then written
straight to its lists, twilio_jobs.dispatch)."""
SENTINEL_PORT = 26379
log = logging.getLogger("twilio_jobs.connections")


@dataclass(frozen=True)
class SentinelTarget:
    """A master found through sentinels."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False

    def master_options(self, options: dict[str, Any]) -> dict[str, Any]:
        extra = {"db": self.db, "username": self.username, "password": self.password}
        if self.ssl:
            extra["ssl"] = True
        return {**options, **{k: v for k, v in extra.items() if v is not None}}

    def sentinel_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The sentinels are asked with the master's socket options, never its credentials."""
        return {k: v for k, v in options.items() if k.startswith("socket_")}


def is_redis(url: str) -> bool:
    return urlsplit(url).scheme in REDIS_SCHEMES


def sentinel_target(url: str) -> SentinelTarget | None:
    """The sentinels and master a URL names, or None for a plain Redis URL."""
    parts = urlsplit(url)
    if parts.scheme in SENTINEL_SCHEMES:
        path = [p for p in parts.path.split("/") if p]
        if not path or len(path) > 2:
            raise ValueError(
                "a Sentinel URL is redis+sentinel://host:port[,host:port...]/<master-name>[/<db>]"
            )
        hosts = parts.netloc.rpartition("@")[2]
        return SentinelTarget(
            sentinels=tuple(_host_port(h) for h in hosts.split(",") if h),
            master=unquote(path[0]),
            db=int(path[1]) if len(path) == 2 else 0,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ssl=parts.scheme.startswith("rediss"),
        )
    if parts.scheme == KOMBU_SENTINEL:
        # kombu's form: `sentinel://h1:p1;sentinel://h2:p2/db?master_name=name`
        urls = [urlsplit(u) for u in url.split(";") if u]
        masters = [v for u in urls for v in parse_qs(u.query).get("master_name", [])]
        if not masters:
            raise ValueError(
                "a sentinel:// broker URL needs its master name: append ?master_name=<name> "
                "(or use redis+sentinel://host:port,.../<master-name>)"
            )
        db_text = next((u.path.strip("/") for u in urls if u.path.strip("/")), "0")
        first = urls[0]
        return SentinelTarget(
            sentinels=tuple((u.hostname or "127.0.0.1", u.port or SENTINEL_PORT) for u in urls),
            master=masters[0],
            db=int(db_text),
            username=unquote(first.username) if first.username else None,
            password=unquote(first.password) if first.password else None,
        )
    return None


def _host_port(text: str) -> tuple[str, int]:
    parts = urlsplit(f"//{text}")
    return parts.hostname or "127.0.0.1", parts.port or SENTINEL_PORT


# -- following the master ----------------------------------------------------------------------
#
# redis-py finds the master through the sentinels when it opens a connection, and leaves an open
# one where it is. After a failover that the sentinels start while the old master still runs
# (`SENTINEL FAILOVER`, a partition), the old master accepts writes until the sentinels turn it
# into a replica, about ten seconds later, and those writes are then lost. So every process
# listens for the sentinels' `+switch-master` announcement, and each connection made before it
# is closed and opened again (on the new master) before its next command.


class Topology:
    """How many times the sentinels announced a new master for this target."""

    _all: dict[SentinelTarget, Topology] = {}
    _lock = threading.Lock()

    def __init__(self, target: SentinelTarget) -> None:
        self.target = target
        self.generation = 0
        self._announced: tuple[float, tuple[str, int]] | None = None
        self._pid = -1

    def announced(self) -> tuple[str, int] | None:
        """The master last announced, for ANNOUNCED_FOR seconds: the sentinels tell each other
        in their hello messages, every 2 s, and until then one may name the old master."""
        announced = self._announced
        if announced is None or time.monotonic() - announced[0] > ANNOUNCED_FOR:
            return None
        return announced[1]

    @classmethod
    def of(cls, target: SentinelTarget) -> Topology:
        with cls._lock:
            topology = cls._all.get(target)
            if topology is None:
                topology = cls._all[target] = cls(target)
            if topology._pid != os.getpid():  # new, or in a forked child: its threads are gone
                topology._pid = os.getpid()
                for host, port in target.sentinels:
                    threading.Thread(
                        target=topology._listen,
                        args=(host, port),
                        name=f"twilio-jobs-sentinel-{port}",
                        daemon=True,
                    ).start()
            return topology

    def _listen(self, host: str, port: int) -> None:
        while True:
            try:
                conn = Redis(host=host, port=port, socket_connect_timeout=2, decode_responses=True)
                pubsub = conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(SWITCH_MASTER)
                for message in pubsub.listen():
                    # `<master-name> <old-ip> <old-port> <new-ip> <new-port>`
                    words = str(message.get("data", "")).split()
                    if len(words) == 5 and words[0] == self.target.master:
                        address = (words[3], int(words[4]))
                        if self._announced is None or self._announced[1] != address:
                            log.warning(
                                "sentinel %s:%s: the master is now %s", host, port, words[3:]
                            )
                        self._announced = (time.monotonic(), address)
                        self.generation += 1
            except (RedisError, OSError):
                conn.close()
                time.sleep(1.0)


SWITCH_MASTER = "+switch-master"
ANNOUNCED_FOR = 10.0


class _Following(SentinelManagedConnection):
    def __init__(self, *, topology: Topology, **options: Any) -> None:
        self.topology = topology
        self.generation = topology.generation
        super().__init__(**options)  # type: ignore[no-untyped-call]

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self.generation != self.topology.generation:
            self.generation = self.topology.generation
            self.disconnect()  # type: ignore[no-untyped-call]
        if not self._sock:
            # Through the sentinels: redis-py's send would reopen the last address.
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    def _connect_retry(self) -> None:
        announced = self.topology.announced()
        if self._sock or announced is None:
            super()._connect_retry()  # type: ignore[no-untyped-call]
            return
        self.connection_pool.master_address = announced
        self.connect_to(announced)  # type: ignore[no-untyped-call]


class _AsyncFollowing(AsyncSentinelManagedConnection):
    def __init__(self, *, topology: Topology, **options: Any) -> None:
        self.topology = topology
        self.generation = topology.generation
        super().__init__(**options)  # type: ignore[no-untyped-call]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self.generation != self.topology.generation:
            self.generation = self.topology.generation
            await self.disconnect()
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]
        await super().send_packed_command(command, check_health)

    async def _connect_retry(self) -> None:
        announced = self.topology.announced()
        if self._reader or announced is None:
            await super()._connect_retry()  # type: ignore[no-untyped-call]
            return
        self.connection_pool.master_address = announced
        await self.connect_to(announced)  # type: ignore[no-untyped-call]


def redis_client(url: str, **options: Any) -> Redis:
    """A redis-py client for `url`; `options` go to its connection pool."""
    target = sentinel_target(url)
    if target is None:
        return Redis.from_url(url, **options)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=target.sentinel_options(options)
    )
    client: Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.master,
        connection_class=_Following,
        topology=Topology.of(target),
        **target.master_options(options),
    )
    return client


def async_redis_client(url: str, **options: Any) -> AsyncRedis:
    """`redis_client` for asyncio."""
    target = sentinel_target(url)
    if target is None:
        return _hiredis_packing(AsyncRedis.from_url(url, **options))
    sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=target.sentinel_options(options)
    )
    client: AsyncRedis = sentinel.master_for(
        target.master,
        connection_class=_AsyncFollowing,
        topology=Topology.of(target),
        **target.master_options(options),
    )
    return _hiredis_packing(client)


def _hiredis_packing(client: AsyncRedis) -> AsyncRedis:
    """redis-py packs commands with hiredis (in C) for its sync connections but in Python for
    its asyncio ones: some 8% of the enqueue route's CPU (docs/benchmarks.md). The client's
    connections (whatever their class: TCP, TLS, unix, sentinel-managed) pack as the sync
    ones do, to the same bytes."""
    if HIREDIS_AVAILABLE:
        pool = client.connection_pool
        pool.connection_class = _packing(pool.connection_class)
    return client


_PACKING: dict[type, type] = {}


def _packing(base: type) -> type:
    packing = _PACKING.get(base)
    if packing is None:
        serializer = HiredisRespSerializer()

        def pack_command(self: Any, *args: Any) -> list[bytes]:
            packed: list[bytes] = serializer.pack(*args)
            return packed

        packing = type(f"Hiredis{base.__name__}", (base,), {"pack_command": pack_command})
        _PACKING[base] = packing
    return packing


def kombu_broker(url: str) -> tuple[str, dict[str, Any]]:
    """The URL kombu is given for `url`, and the transport options it needs besides."""
    target = sentinel_target(url)
    if target is None:
        return url, {}
    auth = ""
    if target.password is not None:
        auth = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
    hosts = [f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.sentinels]
    return ";".join(hosts), {"master_name": target.master}


# -- replication -------------------------------------------------------------------------------

REPLICA_WAIT = 1.0
"""Seconds `TWILIO_JOBS_STORE_MIN_REPLICAS` waits for the replicas to confirm a write."""


def _wait_args(replicas: int) -> tuple[Any, ...]:
    return ("WAIT", replicas, int(REPLICA_WAIT * 1000))


def replicas_acked(redis: Redis, replicas: int) -> int:
    """How many replicas (up to `replicas`) hold every write made so far, waiting up to
    REPLICA_WAIT. WAIT counts the writes of the connection it runs on, and a pipeline's
    connection goes back to the pool after it ran: a PUBLISH first (replicated, no key) puts
    this connection's replication offset past every earlier write, whichever connection made
    it. (WAIT inside MULTI does not block: it must follow the transaction.)"""
    pipe = redis.pipeline(transaction=False)
    pipe.publish(keys.REPLICATION_PROBE, "")
    pipe.execute_command(*_wait_args(replicas))  # type: ignore[no-untyped-call]
    return int(pipe.execute()[-1])


async def areplicas_acked(redis: AsyncRedis, replicas: int) -> int:
    """`replicas_acked` for asyncio."""
    pipe = redis.pipeline(transaction=False)
    pipe.publish(keys.REPLICATION_PROBE, "")
    pipe.execute_command(*_wait_args(replicas))
    return int((await pipe.execute())[-1])


class ClaimReplicas:
    """How many replicas must hold a send claim before Twilio is called.

    A claim that a failover loses lets the new master hand the job out as never sent: a second
    create. So when the master has a replica (a Sentinel or managed-Redis setup, where one can
    be promoted), each claim is followed by a WAIT for one replica (or for
    `TWILIO_JOBS_STORE_MIN_REPLICAS`, when higher) in the same round trip, and a claim no replica
    confirmed is not sent (`twilio_jobs.ledger`). The count comes from the master's
    `INFO replication`, read every REFRESH seconds and held for HOLD seconds after a replica
    drops: a master whose replica has just been promoted away keeps refusing to vouch for
    claims until the sentinels make it a replica itself. A new master (a new replication id:
    the promoted replica) starts afresh, so one whose old master died sends at once. A Redis
    that never had a replica costs nothing but that INFO.
    """

    REFRESH = 5.0
    HOLD = 60.0

    def __init__(self, redis: Redis, floor: int = 0, clock: Any = time.monotonic) -> None:
        self.redis = redis
        self.floor = floor
        self.clock = clock
        self._checked = -float("inf")
        self._seen_at = -float("inf")
        self._replid = ""

    def wanted(self) -> int:
        if self.clock() - self._checked >= self.REFRESH:
            try:
                info = self.redis.info("replication")
            except RedisError:
                info = {}  # no answer: the claim itself fails or succeeds on its own
            self.observe(info)
        return self._count()

    def observe(self, info: dict[str, Any]) -> None:
        """Take in a master's `INFO replication`."""
        now = self._checked = self.clock()
        replid = str(info.get("master_replid", ""))
        if replid and replid != self._replid:
            self._replid, self._seen_at = replid, -float("inf")  # another master
        if int(info.get("connected_slaves", 0)):
            self._seen_at = now

    def _count(self) -> int:
        recent = 1 if self.clock() - self._seen_at < self.HOLD else 0
        return max(self.floor, recent)

    def still_wanted(self, info: dict[str, Any], replicas: int) -> bool:
        """After a WAIT came up short of `replicas`: is the claim's master (`info`, read on
        the claim's own connection) still one that has, or just had, a replica to lose it to?
        After a failover the claim may have been made on the promoted replica, which has none
        yet: it may go out."""
        self.observe(info)
        return self._count() >= replicas

    @staticmethod
    def wait_args(replicas: int) -> tuple[Any, ...]:
        return _wait_args(replicas)
