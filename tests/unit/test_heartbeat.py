"""Orphan recovery by heartbeat (twilio_jobs.heartbeat, lua/take.lua, worker.broker): what a
dead worker had taken is handed out again; live workers and other holders are left alone."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Queue

from tests.conftest import REDIS_URL, require_redis
from twilio_jobs import keys, scripts
from twilio_jobs.heartbeat import Heartbeat
from worker.broker import Transport, tags_restorer

DEAD = "host:1:dead"
LIVE = "host:2:live"
ACCOUNT = "AC" + "0" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def conn() -> Iterator[redis.Redis]:
    client = require_redis()
    client.flushdb()
    yield client
    client.flushdb()


def server_now(conn: redis.Redis) -> float:
    seconds, micros = conn.time()
    return seconds + micros / 1e6


def claimed_job(conn: redis.Redis, job_id: str, holder: str) -> None:
    conn.hset(
        keys.job(job_id),
        mapping={
            "status": "running",
            "ledger": "submitting",
            "leaseHolder": holder,
            "leaseUntil": "9999999999",
            "accountSid": ACCOUNT,
        },
    )
    conn.sadd(keys.worker_claims(holder), job_id)


def test_a_dead_workers_leases_end_and_its_jobs_are_handed_out(conn: redis.Redis) -> None:
    now = server_now(conn)
    conn.zadd(keys.WORKERS, {DEAD: now - 20, LIVE: now})
    claimed_job(conn, "j1", DEAD)
    claimed_job(conn, "j2", LIVE)  # the lease moved on to a live worker: not the dead one's
    conn.sadd(keys.worker_claims(DEAD), "j2", "gone")
    conn.zadd(keys.in_flight(ACCOUNT), {f"{DEAD}:0:1": now + 25, f"{LIVE}:0:1": now + 25})
    handed: list[str] = []
    beat = Heartbeat(10.0, worker_id="host:3:reaper")
    beat.attach(conn, handed.extend)
    assert beat.reap() == 1
    assert handed == ["j1"]
    assert float(conn.hget(keys.job("j1"), "leaseUntil") or 0) < now + 5
    assert conn.hget(keys.job("j2"), "leaseUntil") == "9999999999"
    assert conn.zrange(keys.in_flight(ACCOUNT), 0, -1) == [f"{LIVE}:0:1"]
    assert not conn.exists(keys.worker_claims(DEAD))
    assert conn.zrange(keys.WORKERS, 0, -1) == [LIVE]
    assert beat.reap() == 0  # a live worker is never reaped


def test_no_reaping_until_the_reaper_has_beaten_for_dead_after_since_an_outage(
    conn: redis.Redis,
) -> None:
    clock = Clock()
    beat = Heartbeat(10.0, worker_id=LIVE, monotonic=clock)
    beat.attach(conn, lambda ids: None)
    beat._failed = True  # it could not beat: Redis was down
    beat.beat()
    for _ in range(9):
        assert not beat.may_reap()
        clock.now += 1
        beat.beat()
    clock.now += 1
    beat.beat()
    assert beat.may_reap()
    clock.now += 6  # a pause of its own longer than dead_after / 2: wait again
    beat.beat()
    assert not beat.may_reap()


def test_a_fresh_worker_reaps_after_two_beats(conn: redis.Redis) -> None:
    clock = Clock()
    beat = Heartbeat(10.0, worker_id=LIVE, monotonic=clock)
    beat.attach(conn, lambda ids: None)
    beat.beat()
    assert not beat.may_reap()
    clock.now += 2 * beat.interval
    beat.beat()
    assert beat.may_reap()


def test_channels_beat_until_dropped_and_finished_jobs_leave_the_claims_set(
    conn: redis.Redis,
) -> None:
    beat = Heartbeat(10.0, worker_id=LIVE)
    beat.attach(conn, lambda ids: None)
    channel = beat.add_channel()
    conn.sadd(keys.worker_claims(LIVE), "a", "b")
    beat.finished(["a"])
    beat.beat()
    assert set(conn.zrange(keys.WORKERS, 0, -1)) == {LIVE, channel}
    assert conn.smembers(keys.worker_claims(LIVE)) == {"b"}
    beat.drop_channel(channel)
    conn.delete(keys.WORKERS)
    beat.beat()
    assert conn.zrange(keys.WORKERS, 0, -1) == [LIVE]


def test_take_records_the_message_as_unacked_in_the_same_step_and_restore_puts_it_back(
    conn: redis.Redis,
) -> None:
    queue = Queue("tj-test", Exchange("tj-test"), routing_key="tj-test")
    with Connection(REDIS_URL, transport=Transport) as kombu:
        kombu.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key="tj-test",
                                 declare=[queue])  # fmt: skip
    channel_id = f"{DEAD}/1"
    take = conn.register_script(scripts.source("take"))
    reply = take(
        keys=["unacked", "unacked_index", keys.worker_tags(channel_id), keys.WORKERS, "tj-test"],
        args=[repr(server_now(conn)), channel_id],
    )
    assert reply[0] == "tj-test"
    message = json.loads(reply[1])
    tag = message["properties"]["delivery_tag"]
    assert conn.llen("tj-test") == 0
    record = json.loads(conn.hget("unacked", tag) or "")
    assert record == [message, "tj-test", "tj-test"]
    assert conn.zscore("unacked_index", tag) is not None
    assert conn.smembers(keys.worker_tags(channel_id)) == {tag}
    assert conn.zscore(keys.WORKERS, channel_id) is not None  # reaped even if it never beat
    assert take(keys=["unacked", "unacked_index", "t", keys.WORKERS, "tj-test"],
                args=["1", "x"]) is None  # fmt: skip

    restore = tags_restorer(lambda: Connection(REDIS_URL, transport=Transport))
    assert restore(channel_id) == 1
    assert conn.hlen("unacked") == 0
    assert not conn.exists(keys.worker_tags(channel_id))
    back = json.loads(conn.rpop("tj-test") or "")  # at the consuming end of the list
    assert back["properties"]["delivery_tag"] == tag
    assert back["headers"].get("redelivered") or back["properties"]["delivery_info"].get(
        "redelivered"
    )


def test_takes_go_by_sha_and_survive_a_flushed_script_cache(conn: redis.Redis) -> None:
    """After its first take a channel names lua/take.lua by SHA (the text is most of a take's
    bytes); a Redis that lost its script cache (restart, failover) answers NOSCRIPT, and the
    next take sends the text again: no message is lost or delivered twice on the way."""
    beat = Heartbeat(10.0, worker_id=LIVE)
    beat.attach(conn, lambda ids: None)

    def evalsha_calls() -> int:
        return int(conn.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    with Connection(REDIS_URL, transport=Transport, transport_options={"heartbeat": beat}) as kombu:
        queue = kombu.SimpleQueue("tj-sha-test")
        got = []
        for n in range(4):
            if n == 2:
                conn.script_flush()
            queue.put({"n": n})
            before = evalsha_calls()
            message = queue.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
            if n in (1, 3):  # a channel that has taken once (and not hit NOSCRIPT since)
                assert evalsha_calls() > before
        assert got == [0, 1, 2, 3]
        assert conn.llen("tj-sha-test") == 0 and conn.hlen("unacked") == 0
        queue.close()


def test_take_many_takes_oldest_first_records_each_and_restore_puts_them_back_in_order(
    conn: redis.Redis,
) -> None:
    """lua/take_many.lua (the bulk consumer's take, worker/consumer.py): up to N messages in
    one step, each recorded exactly as lua/take.lua records one, so orphan recovery restores
    them all, at the consuming end."""
    queue = Queue("tj-many", Exchange("tj-many"), routing_key="tj-many")
    with Connection(REDIS_URL, transport=Transport) as kombu:
        producer = kombu.Producer()
        for n in range(5):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="tj-many",
                             declare=[queue])  # fmt: skip
    channel_id = f"{DEAD}/7"
    take = conn.register_script(scripts.source("take_many"))
    fixed = ["unacked", "unacked_index", keys.worker_tags(channel_id), keys.WORKERS]
    reply = take(keys=[*fixed, "tj-many"], args=[repr(server_now(conn)), channel_id, 3])
    messages = [json.loads(item) for item in reply]
    assert [json.loads(base64.b64decode(m["body"]))["n"] for m in messages] == [0, 1, 2]
    tags = [m["properties"]["delivery_tag"] for m in messages]
    assert conn.llen("tj-many") == 2
    assert conn.smembers(keys.worker_tags(channel_id)) == set(tags)
    assert {json.dumps(json.loads(conn.hget("unacked", t) or "")[0]) for t in tags} == {
        json.dumps(m) for m in messages
    }
    assert conn.zcard("unacked_index") == 3
    assert conn.zscore(keys.WORKERS, channel_id) is not None
    # The rest, across lists; then nothing (an empty list, not an error).
    rest = take(keys=[*fixed, "tj-none", "tj-many"], args=["1", channel_id, 10])
    assert len(rest) == 2 and conn.llen("tj-many") == 0
    assert take(keys=[*fixed, "tj-many"], args=["1", channel_id, 10]) == []

    restore = tags_restorer(lambda: Connection(REDIS_URL, transport=Transport))
    assert restore(channel_id) == 5
    assert conn.hlen("unacked") == 0 and conn.zcard("unacked_index") == 0
    again = take(keys=[*fixed, "tj-many"], args=["1", channel_id, 10])
    assert sorted(json.loads(base64.b64decode(json.loads(m)["body"]))["n"] for m in again) == [
        0, 1, 2, 3, 4
    ]  # fmt: skip
