"""The transactional outbox (lua/outbox.lua): every script that ends a job writes its webhook
delivery in the same step, exactly one per final transition; none for moves that are not final
or for jobs without a URL. The body sent is the record as it was at the event."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from twilio_jobs import keys, lifecycle
from twilio_jobs.gates import Gates
from twilio_jobs.ledger import Ledger
from twilio_jobs.outbox import Outbox, payload
from twilio_jobs.settings import Settings
from twilio_jobs.store import JobStore, now_iso, render

HOOK = "https://hooks.example.com/in"
TTL = 3600
SENDER, TO = "+15005550006", "+14155550123"


def _job(conn: redis.Redis, job_id: str, url: str | None = HOOK, **extra: str) -> None:
    fields = {
        "kind": "sendSms",
        "status": "queued",
        "attempts": "0",
        "createdAt": now_iso(),
        "updatedAt": now_iso(),
        "params": json.dumps({"To": TO, "From": SENDER, "Body": "hi"}),
        "accountSid": "AC1",
        "cred": "ciphertext",
        "owner": "tenant-a",
        **extra,
    }
    if url:
        fields["callbackUrl"] = url
    conn.hset(keys.job(job_id), mapping=fields)
    conn.expire(keys.job(job_id), TTL)


def _deliveries(conn: redis.Redis, job_id: str) -> list[dict[str, Any]]:
    found = []
    for member in conn.zrange(keys.WEBHOOK_SCHEDULE, 0, -1):
        if str(member).startswith(f"{job_id}-"):
            found.append({"id": str(member), **conn.hgetall(keys.webhook(str(member)))})
    return found


def _events(conn: redis.Redis, job_id: str) -> list[str]:
    return [d["event"] for d in _deliveries(conn, job_id)]


@pytest.fixture
def ledger(redis_conn: redis.Redis) -> Ledger:
    return Ledger(redis_conn, TTL)


def _claim(ledger: Ledger, job_id: str) -> Any:
    now = time.time()
    return ledger.claim(job_id, now, 30.0, now_iso(now))


@pytest.mark.parametrize("status", ["succeeded", "failed"])
def test_settle_to_a_final_state_writes_one_delivery(
    redis_conn: redis.Redis, ledger: Ledger, status: str
) -> None:
    _job(redis_conn, "j1")
    claim = _claim(ledger, "j1")
    assert claim.mode == "send" and _events(redis_conn, "j1") == []
    result = {"callback": "success" if status == "succeeded" else "error", "contextWrites": {}}
    before = time.time()
    done = ("cred", "lease", "leaseUntil")
    assert ledger.settle("j1", claim.lease, {"status": status, "result": result}, delete=done)
    [delivery] = _deliveries(redis_conn, "j1")
    assert delivery["event"] == f"job.{status}"
    assert delivery["status"] == "pending" and delivery["url"] == HOOK
    assert delivery["owner"] == "tenant-a" and delivery["jobId"] == "j1"
    # taken after the script's writes: the final status and its result, never the token
    record = json.loads(delivery["record"])
    assert record["status"] == status and json.loads(record["result"]) == result
    assert "cred" not in record and "params" not in record
    # due at once for the relay (the webhook scheduler), kept at least as long as the job
    assert before - 1 <= redis_conn.zscore(keys.WEBHOOK_SCHEDULE, delivery["id"]) <= time.time() + 1
    assert redis_conn.pttl(keys.webhook(delivery["id"])) >= keys.WEBHOOK_MIN_TTL * 1000 - 5000
    job = redis_conn.hgetall(keys.job("j1"))
    assert job["whLatest"] == delivery["id"]
    assert json.loads(job["webhook"]) == {
        "id": delivery["id"], "event": f"job.{status}", "status": "pending", "attempts": 0,
        "lastError": None, "lastAttemptAt": None,
    }  # fmt: skip
    # a lost lease writes nothing, and nothing more
    assert not ledger.settle("j1", claim.lease, {"status": status})
    assert len(_deliveries(redis_conn, "j1")) == 1


def test_moves_that_are_not_final_write_no_delivery(
    redis_conn: redis.Redis, ledger: Ledger
) -> None:
    _job(redis_conn, "j1")
    claim = _claim(ledger, "j1")
    done = ("ledger", "lease", "leaseUntil")
    assert ledger.settle("j1", claim.lease, {"status": "retrying"}, delete=done)
    assert _claim(ledger, "j1").mode == "send"
    assert _events(redis_conn, "j1") == []


def test_no_url_no_delivery(redis_conn: redis.Redis, ledger: Ledger) -> None:
    _job(redis_conn, "j1", url=None)
    claim = _claim(ledger, "j1")
    assert ledger.settle("j1", claim.lease, {"status": "succeeded"})
    assert redis_conn.zcard(keys.WEBHOOK_SCHEDULE) == 0
    assert "whLatest" not in redis_conn.hgetall(keys.job("j1"))


def test_cancel_writes_one_delivery(redis_conn: redis.Redis) -> None:
    store = JobStore(redis_conn, TTL)
    _job(redis_conn, "j1", status="scheduled")
    ended = lifecycle.ending(lifecycle.CANCELLED)
    assert store.cancel("j1", ended["error"], ended["result"]) == "cancelled"
    assert store.cancel("j1", ended["error"], ended["result"]) == "cancelled"
    assert _events(redis_conn, "j1") == ["job.cancelled"]


def test_the_gates_write_one_delivery(redis_conn: redis.Redis, ledger: Ledger) -> None:
    redis_conn.hset(keys.campaign("CP1"), "state", "cancelled")
    _job(redis_conn, "in-campaign", campaignId="CP1")
    assert _claim(ledger, "in-campaign").mode == "cancelled"
    assert _claim(ledger, "in-campaign").mode == "final"
    assert _events(redis_conn, "in-campaign") == ["job.cancelled"]

    redis_conn.hset(keys.suppressed("AC1"), f"{SENDER} {TO}", "{}")
    _job(redis_conn, "opted-out")
    assert _claim(ledger, "opted-out").mode == "suppressed"
    assert _events(redis_conn, "opted-out") == ["job.suppressed"]

    # handed back by pacing after its recipient opted out meanwhile
    redis_conn.delete(keys.suppressed("AC1"))
    _job(redis_conn, "handed-back")
    claim = _claim(ledger, "handed-back")
    assert claim.mode == "send"
    redis_conn.hset(keys.suppressed("AC1"), f"{SENDER} {TO}", "{}")
    assert Gates(redis_conn).unclaim("handed-back", claim.lease, time.time()) == "suppressed"
    assert _events(redis_conn, "handed-back") == ["job.suppressed"]


def test_a_delivery_status_writes_its_event_unless_stale(redis_conn: redis.Redis) -> None:
    from twilio_jobs import scripts

    update = scripts.register(redis_conn, "delivery_status")
    _job(redis_conn, "j1", status="succeeded")
    assert update(keys=[keys.job("j1")], args=["sent", 2, "", now_iso(), ""]) == "ok"
    assert update(keys=[keys.job("j1")], args=["queued", 0, "", now_iso(), ""]) == "stale"
    assert update(keys=[keys.job("j1")], args=["delivered", 3, "", now_iso(), ""]) == "ok"
    assert sorted(_events(redis_conn, "j1")) == ["delivery.delivered", "delivery.sent"]


def test_the_body_is_the_record_at_the_event(redis_conn: redis.Redis, ledger: Ledger) -> None:
    outbox = Outbox(redis_conn, Settings(_env_file=None), lambda ids: None)  # type: ignore[call-arg]
    _job(redis_conn, "j1")
    claim = _claim(ledger, "j1")
    assert ledger.settle("j1", claim.lease, {"status": "succeeded", "twilioSid": "SM1"})
    at_event = redis_conn.hgetall(keys.job("j1"))
    [delivery] = _deliveries(redis_conn, "j1")
    redis_conn.hset(keys.job("j1"), mapping={"deliveryStatus": "delivered", "updatedAt": now_iso()})
    claimed = outbox.claim(delivery["id"], time.time(), 30.0)
    assert not isinstance(claimed, str)
    assert claimed.body == payload("j1", at_event)
    shown = json.loads(claimed.body)
    assert shown["deliveryStatus"] is None and shown["status"] == "succeeded"
    assert shown == {k: v for k, v in render("j1", at_event).items() if k != "webhook"}
    # every attempt sends the same bytes
    assert outbox.finish(claimed, "retrying", time.time(), error="HTTP 500", due=time.time())
    again = outbox.claim(delivery["id"], time.time() + 2, 30.0)
    assert not isinstance(again, str) and again.body == claimed.body and again.attempts == 2


def test_enqueue_records_an_event_of_no_script(redis_conn: redis.Redis) -> None:
    outbox = Outbox(redis_conn, Settings(_env_file=None), lambda ids: None)  # type: ignore[call-arg]
    _job(redis_conn, "j1")
    first = outbox.enqueue("j1", "job.failed")
    second = outbox.enqueue("j1", "job.failed")
    assert first and second and first != second
    assert outbox.enqueue("missing", "job.failed") is None
    _job(redis_conn, "no-url", url=None)
    assert outbox.enqueue("no-url", "job.failed") is None


def test_accepted_delivery_statuses_move_the_campaigns_counters(redis_conn: redis.Redis) -> None:
    """Each accepted status callback moves the campaign's delivery counts (a stale one does
    not), and a failure's error code is counted."""
    from twilio_jobs import counts, scripts

    update = scripts.register(redis_conn, "delivery_status")
    for job_id in ("c1", "c2"):
        _job(redis_conn, job_id, url=None, status="succeeded", campaignId="camp")
    args = {"sent": 2, "delivered": 3, "undelivered": 3}
    for job_id, status in (("c1", "sent"), ("c2", "sent"), ("c1", "delivered")):
        update(keys=[keys.job(job_id)], args=[status, args[status], "", now_iso(), ""])
    update(keys=[keys.job("c1")], args=["sent", 2, "", now_iso(), ""])  # stale: no move
    update(keys=[keys.job("c2")], args=["undelivered", 3, "30003", now_iso(), ""])
    summary = counts.summarize(redis_conn.hgetall(keys.campaign_counts("camp")))
    assert summary["delivery"] == {"delivered": 1, "undelivered": 1}
    assert summary["deliveryErrors"] == [{"code": 30003, "count": 1}]


@pytest.mark.parametrize(("status", "kept"), [("delivered", TTL), ("failed", None)])
def test_a_delivered_event_lives_as_long_as_its_record_a_failed_one_longer(
    redis_conn: redis.Redis, ledger: Ledger, status: str, kept: int | None
) -> None:
    """A pending delivery outlives its job's record (keys.WEBHOOK_MIN_TTL) so that its retries
    can run out; once delivered it is kept as long as a record made with it, no longer: with a
    short result TTL, delivered events would otherwise pile up for two days (the soak found
    them at 65,000). A failed one stays for its replay."""
    _job(redis_conn, "j1")
    claim = _claim(ledger, "j1")
    assert ledger.settle("j1", claim.lease, {"status": "succeeded"}, delete=("cred", "lease"))
    [delivery] = _deliveries(redis_conn, "j1")
    outbox = Outbox(redis_conn, Settings(result_ttl=TTL), lambda ids: None)
    now = time.time()
    claimed = outbox.claim(delivery["id"], now, 30.0)
    assert not isinstance(claimed, str)
    assert outbox.finish(claimed, status, now, error=None if kept else "HTTP 500")
    pttl = redis_conn.pttl(keys.webhook(delivery["id"]))
    if kept is None:
        assert pttl >= keys.WEBHOOK_MIN_TTL * 1000 - 5000
    else:
        assert kept * 1000 - 5000 <= pttl <= kept * 1000
