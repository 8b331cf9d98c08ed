"""Campaigns end to end: HTTP API -> Redis -> real worker processes (batch fast path) -> fake."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import SEED_SMS, WorkerProcess, make_settings, service_env, wait_until
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.services import RedisServer
from twilio_jobs.client import Client

pytestmark = pytest.mark.integration

SENDER = "+15005550006"


def number(i: int) -> str:
    return f"+1415{7000000 + i:07d}"


def campaign_env(fake: FakeTwilio, rate: float = 0, **extra: str) -> dict[str, str]:
    return service_env(fake.url, TWILIO_JOBS_SENDER_RATES=f'{{"{SENDER}": {rate}}}', **extra)


@pytest.fixture
def campaign_api(fake_twilio: FakeTwilio, redis_conn: redis.Redis) -> Iterator[TestClient]:
    jobs = Client(make_settings(campaign_env(fake_twilio)))
    with TestClient(create_app(jobs.settings, jobs)) as http:
        yield http
    jobs.close()


def body(recipients: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "accountSid": DEFAULT_ACCOUNT_SID,
        "accountToken": DEFAULT_AUTH_TOKEN,
        "from": SENDER,
        "body": "Hi {{name}}, your code is {{ code }}",
        "recipients": recipients,
        **extra,
    }


def finished(api: TestClient, campaign_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = api.get(f"/api/campaigns/{campaign_id}").json()
        return (
            status
            if status["state"] in ("completed", "cancelled")
            and not (
                status["counts"]["queued"]
                or status["counts"]["running"]
                or status["counts"]["retrying"]
            )
            else None
        )

    return wait_until(done, timeout=timeout, interval=0.2)


def test_5000_recipients_each_get_their_own_body_once(
    campaign_api: TestClient,
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    recipients: list[Any] = [{"to": number(i), "name": f"N{i}", "code": i} for i in range(5000)]
    recipients += [
        {"to": "not-a-number", "name": "x", "code": 1},  # 5000 invalid
        {"name": "nobody", "code": 2},  # 5001 no 'to'
        {"to": number(5001), "code": 3},  # 5002 missing {{name}}
        "+14155550100",  # 5003 not an object
        {"to": "(415) 700-0007", "name": "dup", "code": 7},  # duplicate of number(7)
        {"to": number(10), "name": "dup", "code": 10},  # duplicate
    ]
    started = time.monotonic()
    answer = campaign_api.post("/api/campaigns", json=body(recipients, defaultRegion="US"))
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert time.monotonic() - started < 10
    assert accepted["accepted"] == 5000 and accepted["duplicates"] == 2
    assert [(r["index"], r["reason"]) for r in accepted["rejected"]] == [
        (5000, "invalid phone number: not a phone number"),
        (5001, "missing 'to'"),
        (5002, "missing variable 'name'"),
        (5003, "recipient must be an object"),
    ]
    campaign_id = accepted["campaignId"]
    start_worker(campaign_env(fake_twilio), name="w1")
    status = finished(campaign_api, campaign_id)
    assert status["counts"]["succeeded"] == 5000 and status["progress"] == 1.0

    sent = fake_twilio.messages
    by_to = collections.Counter(m["to"] for m in sent)
    assert len(sent) == 5000 and set(by_to.values()) == {1}
    bodies = {m["to"]: m["body"] for m in sent}
    assert all(bodies[number(i)] == f"Hi N{i}, your code is {i}" for i in range(5000))
    assert fake_twilio.create_attempts == 5000

    page = campaign_api.get(f"/api/campaigns/{campaign_id}/jobs", params={"limit": 3}).json()
    assert [j["status"] for j in page["jobs"]] == ["succeeded"] * 3 and page["nextCursor"] == "3"
    record = campaign_api.get(f"/api/jobs/{page['jobs'][0]['jobId']}").json()
    assert record["campaignId"] == campaign_id
    assert record["result"]["contextWrites"]["to"]["to"] == number(0)


def test_dry_run_counts_segments_and_estimates(
    campaign_api: TestClient, redis_conn: redis.Redis
) -> None:
    recipients = [
        {"to": number(1), "name": "Ann", "code": 1},
        {"to": number(2), "name": "Zoë ☃", "code": 2},
        {"to": number(3), "name": "B" * 200, "code": 3},
        {"to": "+150055444006", "name": "Impossible", "code": 4},  # a digit too many for +1
    ]
    answer = campaign_api.post(
        "/api/campaigns",
        params={"dryRun": "true"},
        json=body(recipients, **{"from": "+15005550007"}),
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["dryRun"] is True and result["campaignId"] is None
    # The same rule as a single send: refused in Twilio's words.
    assert result["rejected"] == [
        {"index": 3, "to": "+150055444006", "reason": "Invalid 'To' Phone Number: +150055444006"}
    ]
    assert result["accepted"] == 3 and result["unknownRanges"] == 0
    assert result["segments"] == {
        "messages": {"GSM-7": 2, "UCS-2": 1},
        "total": 4,
        "maxPerMessage": 2,
    }
    assert result["estimatedSeconds"] == 3.0  # a long code: 1 message per second
    assert not redis_conn.keys("tj:job:*") and not redis_conn.keys("tj:campaign:*")


def test_dry_run_counts_numbers_outside_the_metadata_apart(campaign_api: TestClient) -> None:
    """A possible number in a range phonenumbers does not know is sent (Twilio decides)."""
    recipients = [{"to": number(1)}, {"to": "+19995550123"}, {"to": "+19995550124"}]
    answer = campaign_api.post(
        "/api/campaigns", params={"dryRun": "true"}, json=body(recipients, body="hi")
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["accepted"], result["unknownRanges"], result["rejected"]) == (3, 2, [])


def test_campaign_request_errors_are_400_envelopes(campaign_api: TestClient) -> None:
    answer = campaign_api.post("/api/campaigns", json=body([], bogus=1))
    assert answer.status_code == 400
    assert answer.json()["callback"] == "error"
    answer = campaign_api.post("/api/campaigns", json={**body([{"to": number(1)}]), "from": None})
    assert answer.json()["contextWrites"]["to"] == (
        '[HTTP 400] Unable to create record: A "From" phone number is required.'
    )


def test_pause_stops_sends_within_a_second_and_resume_finishes(
    campaign_api: TestClient,
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    env = campaign_env(fake_twilio, rate=20)
    start_worker(env, name="w1")
    start_worker(env, name="w2")
    recipients = [{"to": number(i), "name": "x", "code": i} for i in range(300)]
    campaign_id = campaign_api.post("/api/campaigns", json=body(recipients)).json()["campaignId"]
    wait_until(lambda: fake_twilio.created_count >= 40, timeout=30)
    paused = campaign_api.post(f"/api/campaigns/{campaign_id}/pause").json()
    assert paused["state"] == "paused"
    time.sleep(1.0)
    after_a_second = fake_twilio.created_count
    time.sleep(2.0)
    assert fake_twilio.created_count == after_a_second < 300
    status = campaign_api.get(f"/api/campaigns/{campaign_id}").json()
    assert status["state"] == "paused" and status["counts"]["succeeded"] == after_a_second

    assert campaign_api.post(f"/api/campaigns/{campaign_id}/resume").json()["state"] == "active"
    status = finished(campaign_api, campaign_id)
    assert status["counts"]["succeeded"] == 300
    assert sorted(m["to"] for m in fake_twilio.messages) == sorted(number(i) for i in range(300))


def test_cancel_ends_the_rest_as_cancelled(
    campaign_api: TestClient,
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker(campaign_env(fake_twilio, rate=20), name="w1")
    recipients = [{"to": number(i), "name": "x", "code": i} for i in range(200)]
    campaign_id = campaign_api.post("/api/campaigns", json=body(recipients)).json()["campaignId"]
    wait_until(lambda: fake_twilio.created_count >= 20, timeout=30)
    cancelled = campaign_api.post(f"/api/campaigns/{campaign_id}/cancel").json()
    assert cancelled["state"] == "cancelled"
    status = finished(campaign_api, campaign_id, timeout=30)
    sent = fake_twilio.created_count
    time.sleep(1.0)
    assert fake_twilio.created_count == sent < 200
    counts = status["counts"]
    assert counts["succeeded"] == sent and counts["cancelled"] == 200 - sent
    page = campaign_api.get(
        f"/api/campaigns/{campaign_id}/jobs", params={"status": "cancelled", "limit": 5}
    ).json()
    assert len(page["jobs"]) == 5
    assert page["jobs"][0]["result"]["contextWrites"]["to"] == "Job was cancelled"


def test_21610_recipient_is_suppressed_and_never_sent_again(
    campaign_api: TestClient,
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker(campaign_env(fake_twilio), name="w1")
    stopped = number(3)
    fake_twilio.add_fault(400, code=21610, match_to=stopped, count=1000)
    recipients = [{"to": number(i), "name": "x", "code": i} for i in range(10)]
    first = campaign_api.post("/api/campaigns", json=body(recipients)).json()["campaignId"]
    status = finished(campaign_api, first)
    assert status["counts"]["succeeded"] == 9 and status["counts"]["failed"] == 1
    assert status["topErrors"] == [{"code": 21610, "count": 1}]
    listed = campaign_api.get(
        "/api/suppressions", params={"accountSid": DEFAULT_ACCOUNT_SID}
    ).json()["suppressions"]
    assert [(s["sender"], s["to"], s["code"]) for s in listed] == [(SENDER, stopped, 21610)]

    attempts = fake_twilio.create_attempts
    second = campaign_api.post("/api/campaigns", json=body(recipients)).json()["campaignId"]
    status = finished(campaign_api, second)
    assert status["counts"]["succeeded"] == 9 and status["counts"]["suppressed"] == 1
    assert fake_twilio.create_attempts == attempts + 9
    assert fake_twilio.count_by(to=stopped) == 0

    # A single send to the same recipient from the same sender is suppressed too...
    jobs = Client(make_settings(campaign_env(fake_twilio)))
    job_id = jobs.send_sms(
        account_sid=DEFAULT_ACCOUNT_SID, account_token=DEFAULT_AUTH_TOKEN,
        from_=SENDER, to=stopped, body="single",
    ).jobId  # fmt: skip
    record = jobs.wait(job_id, 20)
    assert record.status == "suppressed" and record.error and record.error.code == 21610
    assert fake_twilio.create_attempts == attempts + 9
    # ...until the suppression is lifted.
    lifted = campaign_api.delete(
        "/api/suppressions", params={"accountSid": DEFAULT_ACCOUNT_SID, "to": stopped}
    ).json()
    assert lifted == {"lifted": 1}
    fake_twilio.reset()
    record = jobs.wait(jobs.send_sms(
        account_sid=DEFAULT_ACCOUNT_SID, account_token=DEFAULT_AUTH_TOKEN,
        from_=SENDER, to=stopped, body="again",
    ).jobId, 20)  # fmt: skip
    assert record.status == "succeeded"
    jobs.close()


def test_a_campaign_idempotency_key_returns_the_same_campaign(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis
) -> None:
    """The same key and request: 200 and the first answer, one campaign written; another
    request with that key: 409. The Python client keys it the same way."""
    env = service_env(fake_twilio.url)
    jobs = Client(make_settings(env))
    body = {**SEED_SMS, "recipients": [{"to": "+14155550101"}, {"to": "+14155550102"}]}
    with TestClient(create_app(jobs.settings, jobs)) as api:
        first = api.post("/api/campaigns", json=body, headers={"Idempotency-Key": "launch-1"})
        again = api.post("/api/campaigns", json=body, headers={"Idempotency-Key": "launch-1"})
        other = api.post(
            "/api/campaigns",
            json={**body, "body": "other"},
            headers={"Idempotency-Key": "launch-1"},
        )
        in_body = api.post("/api/campaigns", json={**body, "idempotencyKey": "launch-2"})
        in_body_again = api.post("/api/campaigns", json={**body, "idempotencyKey": "launch-2"})
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert again.json() == first.json() and first.json()["accepted"] == 2
    assert other.json()["contextWrites"]["to"] == (
        "Idempotency key was already used with a different request"
    )
    assert in_body.status_code == 202 and in_body_again.status_code == 200
    assert in_body_again.json()["campaignId"] == in_body.json()["campaignId"]
    fields = {**body, "idempotency_key": "py-1"}
    assert jobs.create_campaign(**fields).campaignId == jobs.create_campaign(**fields).campaignId
    campaigns = {k for k in redis_conn.scan_iter("tj:campaign:*") if k.count(":") == 2}
    assert len(campaigns) == 3
    jobs.close()


def test_campaign_chaos_workers_killed_twice_then_redis_restarted(
    fake_twilio: FakeTwilio,
    redis_server: RedisServer,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """10,000 recipients, paced; both workers `kill -9`ed twice, then Redis `kill -9`ed and
    restarted from its AOF: every recipient gets exactly one message and the campaign
    completes, with default recovery settings."""
    total = 10_000
    env = campaign_env(fake_twilio, rate=500, redis_url=redis_server.url)
    for name in ("TWILIO_JOBS_READ_TIMEOUT", "TWILIO_JOBS_CONNECT_TIMEOUT"):
        env.pop(name)  # Twilio's defaults: a loaded machine must not turn into failed sends
    fake_twilio.set_latency(0.05)
    jobs = Client(make_settings(env))
    started = time.monotonic()
    with TestClient(create_app(jobs.settings, jobs)) as api:
        recipients = [{"to": number(i), "name": "x", "code": i} for i in range(total)]
        answer = api.post("/api/campaigns", json=body(recipients))
        assert answer.status_code == 202, answer.text
        campaign_id = answer.json()["campaignId"]
        kills = 0
        for round_, sent in enumerate((2000, 4500)):
            workers = [start_worker(env, None, name=f"cc-{round_}-{n}") for n in range(2)]
            wait_until(lambda s=sent: fake_twilio.created_count >= s, timeout=120)
            for proc in workers:
                proc.kill()
                kills += 1
        for n in range(2):
            start_worker(env, None, name=f"cc-final-{n}")
        wait_until(lambda: fake_twilio.created_count >= 7000, timeout=120)
        redis_server.kill()
        time.sleep(4.0)
        redis_server.start()
        status = wait_until(lambda: _completed(api, campaign_id), timeout=240, interval=0.5)
    by_to = collections.Counter(m["to"] for m in fake_twilio.messages)
    print(
        f"\ncampaign chaos: recipients={total} worker-kills={kills} redis-restarts=1 "
        f"creates={fake_twilio.created_count} duplicates={sum(n - 1 for n in by_to.values())} "
        f"took={time.monotonic() - started:.1f}s"
    )
    assert kills == 4
    assert status["counts"]["succeeded"] == total and status["progress"] == 1.0
    assert len(by_to) == total and set(by_to.values()) == {1}
    assert fake_twilio.created_count == total
    jobs.close()


def _completed(api: TestClient, campaign_id: str) -> dict[str, Any] | None:
    answer = api.get(f"/api/campaigns/{campaign_id}")
    if answer.status_code != 200:
        return None  # Redis is still coming back
    status: dict[str, Any] = answer.json()
    return status if status["state"] == "completed" else None
