"""Redis URLs: plain, Sentinel (ours and kombu's form), and what kombu is given for them."""

from __future__ import annotations

import pytest

from twilio_jobs import connections
from twilio_jobs.connections import ClaimReplicas


def test_sentinel_urls() -> None:
    target = connections.sentinel_target("redis+sentinel://u:p%40@h1:1,h2,[::1]:3/main/2")
    assert target is not None
    assert target.sentinels == (("h1", 1), ("h2", 26379), ("::1", 3))
    assert (target.master, target.db, target.username, target.password) == ("main", 2, "u", "p@")
    url, options = connections.kombu_broker("redis+sentinel://h1:1,h2:2/main/2")
    assert url == "sentinel://h1:1/2;sentinel://h2:2/2"
    assert options == {"master_name": "main"}
    kombu = connections.sentinel_target("sentinel://h1:1;sentinel://h2:2/3?master_name=main")
    assert kombu is not None and kombu.sentinels == (("h1", 1), ("h2", 2)) and kombu.db == 3
    assert connections.sentinel_target("redis://localhost:6379/0") is None
    with pytest.raises(ValueError, match="master name"):
        connections.sentinel_target("sentinel://h1:1")
    with pytest.raises(ValueError, match="master-name"):
        connections.sentinel_target("redis+sentinel://h1:1")


def test_a_sentinel_broker_is_kombus_sentinel_transport_with_the_master_name() -> None:
    from twilio_jobs.dispatch import Dispatcher, broker_url, transport_options
    from twilio_jobs.settings import Settings

    url = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/main/0"
    settings = Settings(_env_file=None, REDIS_URL=url)  # type: ignore[call-arg]
    assert broker_url(settings) == "sentinel://127.0.0.1:26379/0;sentinel://127.0.0.1:26380/0"
    assert transport_options(settings)["master_name"] == "main"
    # The broker is the job store's Redis: task messages join the job's own pipeline.
    assert Dispatcher(settings).shares_store
    plain = Settings(_env_file=None, REDIS_URL="redis://localhost/0")  # type: ignore[call-arg]
    assert "master_name" not in transport_options(plain)
    assert "master_name" not in transport_options(Settings(_env_file=None))  # type: ignore[call-arg]


class _Info:
    """A master's INFO replication, as the test sets it."""

    def __init__(self) -> None:
        self.replid, self.connected = "a" * 40, 1

    def info(self, section: str) -> dict[str, object]:
        assert section == "replication"
        return {"master_replid": self.replid, "connected_slaves": self.connected}


def test_claims_wait_for_a_replica_while_the_master_has_or_just_had_one() -> None:
    master, now = _Info(), [0.0]
    replicas = ClaimReplicas(master, clock=lambda: now[0])  # type: ignore[arg-type]
    assert replicas.wanted() == 1
    # The replica went away (promoted, say): this master keeps asking for HOLD seconds...
    master.connected = 0
    now[0] += ClaimReplicas.REFRESH
    assert replicas.wanted() == 1 and replicas.still_wanted(master.info("replication"), 1)
    now[0] += ClaimReplicas.HOLD
    assert replicas.wanted() == 0
    # ...but a promoted replica (a new replication id) without replicas of its own does not.
    master.connected, now[0] = 1, now[0] + ClaimReplicas.REFRESH
    assert replicas.wanted() == 1
    master.replid, master.connected = "b" * 40, 0
    assert not replicas.still_wanted(master.info("replication"), 1)
    assert ClaimReplicas(master, floor=2).wanted() == 2  # TWILIO_JOBS_STORE_MIN_REPLICAS


def test_a_redis_without_replicas_is_never_waited_on() -> None:
    master = _Info()
    master.connected = 0
    assert ClaimReplicas(master).wanted() == 0  # type: ignore[arg-type]
