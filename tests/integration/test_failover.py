"""Redis Sentinel: the job store and the broker fail over to the replica under steady traffic.

A real master, a replica and three sentinels on loopback (tests/services.py); the API and two
`twilio-jobs worker` processes find the master through `REDIS_URL=redis+sentinel://...` with
default settings. Broker-independent: these run once, on the Redis broker behind the sentinels.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import (
    SEED_SMS,
    WorkerProcess,
    make_settings,
    require_redis,
    service_env,
    statuses,
    wait_quiet,
    wait_until,
)
from tests.fake_twilio import FakeTwilio
from tests.services import SentinelCluster
from twilio_jobs import keys
from twilio_jobs.client import Client
from twilio_jobs.connections import ClaimReplicas
from twilio_jobs.errors import REPLICAS_SHORT, ServiceUnavailable
from twilio_jobs.ledger import Ledger
from twilio_jobs.schemas import JobKind

pytestmark = pytest.mark.integration

UNPACED = '{"+15005550006": 0}'
FINAL = ("succeeded", "failed", "cancelled", "suppressed")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    require_redis()
    cluster = SentinelCluster(tmp_path / "sentinel").start()
    yield cluster
    cluster.stop()


def cluster_env(fake: FakeTwilio, cluster: SentinelCluster, **extra: str) -> dict[str, str]:
    env = service_env(fake.url, redis_url=cluster.url, TWILIO_JOBS_SENDER_RATES=UNPACED, **extra)
    env.pop("BROKER_URL", None)  # the broker is the job store's Redis, behind the sentinels
    return env


@dataclass
class Traffic:
    """Sends at a steady pace from a thread; every answer is kept with its time."""

    api: TestClient
    rate: float = 40.0
    answers: list[tuple[float, int, dict[str, Any], str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        i = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            to = f"+1415{i:07d}"
            answer = self.api.post("/api/twilio/sendSms", json={**SEED_SMS, "to": to})
            self.answers.append((time.monotonic(), answer.status_code, answer.json(), to))
            i += 1
            next_at += 1 / self.rate
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def accepted(self) -> dict[str, str]:
        return {body["jobId"]: to for _, code, body, to in self.answers if code == 202}

    def refusals(self) -> list[tuple[float, int, dict[str, Any], str]]:
        return [a for a in self.answers if a[1] != 202]


@pytest.mark.parametrize("how", ["master-killed", "sentinel-failover"])
def test_sentinel_failover_under_traffic(
    how: str,
    cluster: SentinelCluster,
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    env = cluster_env(fake_twilio, cluster)
    settings = make_settings(env)
    fake_twilio.set_latency(0.02)
    workers = [start_worker(env, name=f"failover-{n}") for n in range(2)]
    jobs = Client(settings)
    with TestClient(create_app(settings, jobs)) as api:
        traffic = Traffic(api)
        sender = threading.Thread(target=traffic.run, daemon=True)
        sender.start()
        wait_until(lambda: len(traffic.accepted()) >= 100, timeout=30)

        old_port = cluster.master_port()
        assert old_port is not None
        killed_at = time.monotonic()
        if how == "master-killed":
            cluster.server(old_port).kill()
        else:  # the old master runs on until the sentinels make it a replica
            cluster.sentinel().execute_command("SENTINEL", "FAILOVER", cluster.MASTER)
        wait_until(lambda: cluster.master_port() not in (None, old_port), timeout=60, interval=0.1)
        switched = time.monotonic() - killed_at
        # Accepting again: 100 more jobs after the switch.
        after = len(traffic.answers)
        wait_until(
            lambda: sum(1 for a in traffic.answers[after:] if a[1] == 202) >= 100, timeout=60
        )
        traffic.stop.set()
        sender.join(timeout=30)

    refusals = traffic.refusals()
    for _, code, body, _ in refusals:
        assert code == 503, body
        assert body["callback"] == "error"
    window = (refusals[-1][0] - refusals[0][0]) if refusals else 0.0

    new_master = redis.Redis(port=cluster.master_port() or 0, decode_responses=True)
    accepted = traffic.accepted()
    ids = list(accepted)
    kept = [j for j, found in zip(ids, _exists(new_master, ids), strict=True) if found]
    lost = [j for j in ids if j not in set(kept)]

    def kept_final() -> bool:
        counts = statuses(new_master, kept)
        return sum(counts[s] for s in FINAL) == len(kept)

    drain_started = time.monotonic()
    try:
        # A task message that a worker had taken when its consumer died on the lost connection
        # (celery#8091) waits for the watchdog (TWILIO_JOBS_REQUEUE_AFTER): a wait this long
        # is reported in `drained_in`, never hidden by a shorter setting.
        wait_until(kept_final, timeout=settings.requeue_after + 60, interval=0.5)
    except AssertionError:
        stuck = [j for j in kept if new_master.hget(f"tj:job:{j}", "status") not in FINAL]
        raise AssertionError(
            f"not final: {statuses(new_master, kept)}; e.g. {new_master.hgetall(f'tj:job:{stuck[0]}')}"
            f" queue={new_master.llen('twilio_jobs')} unacked={new_master.hlen('unacked')}"
            f" schedule={new_master.zrange('tj:schedule', 0, 4, withscores=True)} now={time.time()}"
        ) from None
    drained = time.monotonic() - drain_started
    counts = statuses(new_master, kept)
    per_number = Counter(m["to"] for m in fake_twilio.messages)
    lost_sent = sum(1 for j in lost if per_number[accepted[j]])
    restarts = sum(w.log_text().count("starting it again") for w in workers)
    print(
        f"\n{how}: accepted={len(ids)} switch={switched:.1f}s "
        f"503s={len(refusals)} over {window:.1f}s lost_by_replication={len(lost)} "
        f"(sent before the crash: {lost_sent}) statuses={dict(counts)} drained_in={drained:.1f}s "
        f"creates={fake_twilio.created_count} worker_restarts={restarts}"
    )
    assert counts["succeeded"] == len(kept)
    assert max(per_number.values()) == 1, "a job was sent twice"
    assert window <= switched + 5.0
    jobs.close()


def _exists(conn: redis.Redis, job_ids: list[str]) -> list[bool]:
    pipe = conn.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.exists(f"tj:job:{job_id}")
    return [bool(n) for n in pipe.execute()]


def test_min_replicas_refuses_what_no_replica_holds(
    cluster: SentinelCluster,
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """With TWILIO_JOBS_STORE_MIN_REPLICAS=1 an accepted job is on the replica; while no replica
    answers the API says 503, the job it wrote is removed, and nothing is sent."""
    env = cluster_env(fake_twilio, cluster, TWILIO_JOBS_STORE_MIN_REPLICAS="1")
    settings = make_settings(env)
    start_worker(env, name="replicas")
    jobs = Client(settings)
    master_port = cluster.master_port()
    assert master_port is not None
    replica = next(s for s in cluster.servers if s.port != master_port)
    with TestClient(create_app(settings, jobs)) as api:
        ok = api.post("/api/twilio/sendSms", json=SEED_SMS)
        assert ok.status_code == 202
        assert jobs.wait(ok.json()["jobId"], timeout=20).status == "succeeded"
        assert redis.Redis(port=replica.port).exists(f"tj:job:{ok.json()['jobId']}")

        replica.kill()
        master = redis.Redis(port=master_port, decode_responses=True)
        wait_until(lambda: master.info("replication")["connected_slaves"] == 0, timeout=30)
        before = set(master.scan_iter("tj:job:*"))
        counted, indexed = master.hgetall(keys.STATS), master.zcard(keys.index_all(""))
        refused = api.post("/api/twilio/sendSms", json={**SEED_SMS, "to": "+14155550177"})
        assert refused.status_code == 503
        assert refused.json() == {"callback": "error", "contextWrites": {"to": REPLICAS_SHORT}}
        assert set(master.scan_iter("tj:job:*")) == before
        # Taken back whole: no count in the stats (GET /metrics), no entry in the indexes.
        assert master.hgetall(keys.STATS) == counted
        assert master.zcard(keys.index_all("")) == indexed
        keyed = {**SEED_SMS, "to": "+14155550179"}
        with pytest.raises(ServiceUnavailable, match="replicas"):
            jobs.submit(JobKind.sendSms, keyed, idempotency_key="failover-1")
        assert not master.exists("tj:idem::failover-1")

        replica.start()
        wait_until(lambda: _accepted(api), timeout=60, interval=0.2)
        # The key was not used up by the refused request.
        assert jobs.submit(JobKind.sendSms, keyed, idempotency_key="failover-1").created
        wait_quiet(master, fake_twilio)
    assert fake_twilio.count_by(to="+14155550177") == 0
    assert fake_twilio.count_by(to="+14155550179") == 1
    jobs.close()


def _accepted(api: TestClient) -> bool:
    answer = api.post("/api/twilio/sendSms", json={**SEED_SMS, "to": "+14155550178"})
    return answer.status_code == 202


def test_a_claim_no_replica_confirmed_is_not_sent(cluster: SentinelCluster) -> None:
    """A send claim is copied to the replica before Twilio is called: one the master alone
    holds would vanish in a failover, and the new master hand the job out as never sent. With
    the replica frozen (its link still up, so the master counts it), the claim is refused; once
    the replica answers again, the job's next holder reconciles, never sends blind."""
    master_port = cluster.master_port()
    assert master_port is not None
    master = redis.Redis(port=master_port, decode_responses=True)
    replica = next(s for s in cluster.servers if s.port != master_port)
    assert replica.proc is not None
    ledger = Ledger(master, 600, replicas=ClaimReplicas(master))
    for job_id in ("confirmed", "frozen"):
        master.hset(keys.job(job_id), mapping={"status": "queued", "kind": "sendSms"})

    now = time.time()
    assert ledger.claim("confirmed", now, 30.0, "now").mode == "send"
    replica.proc.send_signal(signal.SIGSTOP)
    try:
        frozen = ledger.claim("frozen", now, 30.0, "now")
    finally:
        replica.proc.send_signal(signal.SIGCONT)
    assert frozen.mode == "busy" and frozen.until == now + 30.0
    # The refused claim's lease runs out; the next holder asks Twilio before sending.
    assert ledger.claim("frozen", now + 31.0, 30.0, "now").mode == "reconcile"
