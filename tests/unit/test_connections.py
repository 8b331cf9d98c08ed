"""Redis URLs: plain, Sentinel (ours and kombu's form), and what kombu is given for them."""

from __future__ import annotations

import pytest

from twilio_jobs import connections


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
