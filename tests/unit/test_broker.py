"""worker.broker: kombu's Redis transport with one client per channel and plain pipelines."""

from __future__ import annotations

from kombu import Connection

from tests.conftest import REDIS_URL, require_redis
from worker.broker import Channel, Transport, transport_for


def test_transport_only_for_plain_redis() -> None:
    assert transport_for("redis://127.0.0.1:6379/0") == "worker.broker:Transport"
    assert transport_for("rediss://host:6380/0") is None
    assert transport_for("amqp://guest@localhost//") is None


def test_channel_reuses_one_client_and_acks_without_multi() -> None:
    require_redis()
    with Connection(REDIS_URL, transport=Transport) as conn:
        channel = conn.channel()
        assert isinstance(channel, Channel)
        first = channel._create_client()
        assert channel._create_client() is first
        assert channel._create_client(asynchronous=True) is not first
        with channel.qos.pipe_or_acquire() as pipe:
            assert pipe.transaction is False
        channel.close()
