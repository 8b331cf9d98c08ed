"""kombu's Redis transport without its per-message client construction, and with a record of
what each consuming channel took, for orphan recovery (twilio_jobs.heartbeat).

kombu builds a new `redis.Redis` object for every delivery (recording it as unacked) and
every ack; in redis-py 8 each construction fills a response-callback table, which cost about
a tenth of a worker's CPU per job in a profile (docs/benchmarks.md). A `redis.Redis` over a
connection pool is thread-safe, so one per channel (per pool) serves every thread.

A worker's channels get the process's `Heartbeat` through the transport option `heartbeat`.
A channel that consumes gets an id of its own that beats while the channel is open; each
delivery's tag goes into that id's tags set in the same round trip as kombu's `unacked` entry,
and leaves it with the ack. Once the id stops beating (its process died, or a broker reconnect
replaced the channel), `restore_tags` puts those messages back at the head of their queues.

kombu takes a message with BRPOP and records it as unacked in a second round trip: a worker
killed between the two (with a reply on its way, which under load is nearly always) loses the
message, and its job waited for the 300 s watchdog. A channel with a heartbeat takes instead
with `lua/take.lua`, which pops and records in one atomic step; when every queue is empty it
waits with `BLMOVE q q RIGHT RIGHT` (a blocking peek: the list is left as it was) on each queue
in turn, `PEEK_TIMEOUT` at a time, and takes again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from queue import Empty
from typing import Any
from urllib.parse import urlsplit

from kombu.connection import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils import encoding as kombu_encoding
from kombu.utils import json as kombu_json
from redis.exceptions import NoScriptError

from twilio_jobs import keys, scripts

PEEK_TIMEOUT = 0.2

# kombu's helpers, untyped.
dumps: Any = kombu_json.dumps
loads: Any = kombu_json.loads
bytes_to_str: Any = kombu_encoding.bytes_to_str

log = logging.getLogger("twilio_jobs.worker")


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

    def append(self, message: Any, delivery_tag: str) -> None:
        channel: Channel = self.channel
        if channel.recovery_id is not None:
            # Recorded by the take itself (lua/take.lua).
            virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]
            return
        delivery = message.delivery_info
        raw = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()})
            pipe.hset(self.unacked_key, delivery_tag, raw)
            pipe.execute()
            virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        with self.pipe_or_acquire(pipe) as pipe:
            pipe.zrem(self.unacked_index_key, delivery_tag).hdel(self.unacked_key, delivery_tag)
            if self.channel.recovery_id is not None:
                pipe.srem(keys.worker_tags(self.channel.recovery_id), delivery_tag)
            return pipe


class Channel(kombu_redis.Channel):
    QoS = QoS
    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options,
        "heartbeat",
    )
    heartbeat: Any = None
    recovery_id: str | None = None
    _shared_client: Any = None
    _take_mode: str | None = None  # the command in flight: "take" or "peek"
    _take_idle = False  # the last take found every queue empty: peek next
    _peeks = 0
    _take_loaded = False  # Redis has lua/take.lua in its script cache: EVALSHA
    _plain_until = 0.0  # after the server refused the script (e.g. out of memory): BRPOP a while

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.heartbeat is None or self.global_keyprefix or time.monotonic() < self._plain_until:
            super()._brpop_start(timeout)  # type: ignore[no-untyped-call]
            return
        kombu: Any = self  # kombu's Channel is untyped
        queues = kombu._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if self.recovery_id is None:
            self.recovery_id = self.heartbeat.add_channel()
        lists = [kombu._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        kombu._in_poll = self.client.connection
        kombu._brpop_sent_at = time.monotonic()
        if self._take_idle:
            self._take_mode = "peek"
            key = kombu._q_for_pri(queues[self._peeks % len(queues)], 0)
            self._peeks += 1
            command: tuple[Any, ...] = ("BLMOVE", key, key, "RIGHT", "RIGHT", PEEK_TIMEOUT)
        else:
            self._take_mode = "take"
            fixed = [
                self.unacked_key,
                self.unacked_index_key,
                keys.worker_tags(self.recovery_id),
                keys.WORKERS,
            ]
            # By its SHA once Redis has it (the full text is most of the bytes of a take):
            # the first take of a channel, and the one after a NOSCRIPT, sends the text.
            script = (
                ("EVALSHA", scripts.sha("take"))
                if self._take_loaded
                else ("EVAL", scripts.source("take"))
            )
            command = (
                *script,
                len(fixed) + len(lists),
                *fixed,
                *lists,
                repr(time.time()),
                self.recovery_id,
            )
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        mode, self._take_mode = self._take_mode, None
        if mode is None:
            return bool(super()._brpop_read(**options))  # type: ignore[no-untyped-call]
        kombu: Any = self  # kombu's Channel is untyped
        try:
            try:
                reply = self.client.parse_response(
                    self.client.connection, "EVALSHA" if mode == "take" else "BLMOVE", **options
                )
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except NoScriptError:
                self._take_loaded = False  # Redis restarted or flushed its scripts: send the text
                raise Empty() from None
            except self.ResponseError:
                log.warning("taking with lua/take.lua refused by Redis; BRPOP for a while")
                self._plain_until = time.monotonic() + 10.0
                raise Empty() from None
            if mode == "take":
                self._take_loaded = True
            # After a peek, take (whatever the peek saw); after an empty take, peek.
            self._take_idle = mode == "take" and not reply
            if mode == "peek" or not reply:
                raise Empty()
            dest, item = reply
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            kombu._queue_cycle.rotate(dest)
            self.connection._deliver(loads(bytes_to_str(item)), dest)
            return True
        finally:
            kombu._in_poll = None
            kombu._flush_brpop_reauth()

    def close(self) -> None:
        if self.recovery_id is not None and self.heartbeat is not None:
            # Beats stop; what kombu does not restore below is restored once the id lapses.
            self.heartbeat.drop_channel(self.recovery_id)
        super().close()  # type: ignore[no-untyped-call]

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()  # type: ignore[no-untyped-call]
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def tags_restorer(connect: Callable[[], Connection]) -> Callable[[str], int]:
    """`restore_tags` for twilio_jobs.heartbeat: put a dead channel's unacked task messages
    back at the head of their queues (`lua/restore.lua`, one atomic step; a message with a
    priority goes back through kombu's own `restore_by_tag`)."""

    def restore(worker_id: str) -> int:
        key = keys.worker_tags(worker_id)
        with connect() as conn:
            channel: Any = conn.default_channel
            client = channel.client
            script = scripts.register(client, "restore")
            reply = script(
                keys=[channel.unacked_key, channel.unacked_index_key, key],
                args=[channel.keyprefix_queue % "", channel.sep],
            )
            restored = int(reply[0])
            for tag in reply[1:]:
                channel.qos.restore_by_tag(bytes_to_str(tag), client=client)
                restored += 1
        return restored

    return restore


def transport_for(broker_url: str) -> str | None:
    """This transport for plain `redis://` brokers; kombu's own choice for any other."""
    return f"{__name__}:Transport" if urlsplit(broker_url).scheme == "redis" else None
