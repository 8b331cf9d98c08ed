"""The indexes behind `GET /api/jobs` (twilio_jobs.search): kept by the lifecycle as jobs move,
per tenant, and trimmed and expired with the records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import SEED_SMS, WorkerProcess, make_settings, wait_until
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs import keys
from twilio_jobs.client import Client

pytestmark = pytest.mark.integration

ALPHA = {"Authorization": "Bearer key-alpha-0123456789"}
BRAVO = {"Authorization": "Bearer key-bravo-0123456789"}
API_KEYS = "alpha:key-alpha-0123456789,bravo:key-bravo-0123456789"
FAILING = "+14155550177"


@pytest.fixture
def api(env: dict[str, str]) -> Iterator[tuple[TestClient, Client]]:
    jobs = Client(make_settings({**env, "TWILIO_JOBS_API_KEYS": API_KEYS}))
    with TestClient(create_app(jobs.settings, jobs)) as http:
        yield http, jobs
    jobs.close()


def settled(http: TestClient, job_ids: list[str]) -> None:
    def done() -> bool:
        return all(
            http.get(f"/api/jobs/{j}", headers=ALPHA).json()["status"] in ("succeeded", "failed")
            for j in job_ids
        )

    wait_until(done, timeout=30)


def ids(page: dict[str, object]) -> list[str]:
    return [j["jobId"] for j in page["jobs"]]  # type: ignore[attr-defined, index]


def test_search_follows_the_lifecycle_per_tenant(
    api: tuple[TestClient, Client],
    worker: WorkerProcess,
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
) -> None:
    http, _ = api
    fake_twilio.add_fault(400, count=1, match_to=FAILING, code=21408)
    sent = [
        http.post("/api/twilio/sendSms", json={**SEED_SMS, "to": to}, headers=ALPHA).json()["jobId"]
        for to in ("+14155550101", FAILING, "+14155550102")
    ]
    campaign = http.post(
        "/api/campaigns",
        headers=ALPHA,
        json={
            "accountSid": DEFAULT_ACCOUNT_SID,
            "accountToken": DEFAULT_AUTH_TOKEN,
            "from": SEED_SMS["from"],
            "body": "hi {{name}}",
            "recipients": [{"to": f"+1415555020{i}", "name": str(i)} for i in range(5)],
        },
    ).json()
    members = [str(j) for j in redis_conn.lrange(keys.campaign_jobs(campaign["campaignId"]), 0, -1)]
    settled(http, sent + members)

    everything = http.get("/api/jobs", headers=ALPHA, params={"limit": 100}).json()
    assert set(ids(everything)) == set(sent + members) and everything["nextCursor"] is None
    created = [j["createdAt"] for j in everything["jobs"]]
    assert created == sorted(created, reverse=True)  # newest first

    failed = http.get("/api/jobs", headers=ALPHA, params={"status": "failed"}).json()
    assert ids(failed) == [sent[1]]
    by_code = http.get("/api/jobs", headers=ALPHA, params={"errorCode": 21408}).json()
    assert ids(by_code) == [sent[1]]
    by_to = http.get("/api/jobs", headers=ALPHA, params={"to": FAILING}).json()
    assert ids(by_to) == [sent[1]]
    in_campaign = http.get(
        "/api/jobs", headers=ALPHA, params={"campaignId": campaign["campaignId"], "limit": 2}
    ).json()
    assert len(in_campaign["jobs"]) == 2 and in_campaign["nextCursor"]
    rest = http.get(
        "/api/jobs",
        headers=ALPHA,
        params={"campaignId": campaign["campaignId"], "cursor": in_campaign["nextCursor"]},
    ).json()
    assert set(ids(in_campaign) + ids(rest)) == set(members) and rest["nextCursor"] is None
    combined = http.get(
        "/api/jobs", headers=ALPHA, params={"status": "succeeded", "to": "+14155550101"}
    ).json()
    assert ids(combined) == [sent[0]]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert http.get("/api/jobs", headers=ALPHA, params={"since": later}).json()["jobs"] == []
    assert len(ids(http.get("/api/jobs", headers=ALPHA, params={"until": later}).json())) == 8

    # Another tenant sees none of it; the recipient is nowhere in clear in a key name.
    assert http.get("/api/jobs", headers=BRAVO, params={"to": FAILING}).json()["jobs"] == []
    assert http.get("/api/jobs", headers=BRAVO).json() == {"jobs": [], "nextCursor": None}
    names = [str(k) for k in redis_conn.scan_iter(keys.index_all("*").replace(":all", ":*"))]
    assert names and not [n for n in names if "4155550" in n]
    listed = http.get("/api/campaigns", headers=ALPHA).json()["campaigns"]
    assert [c["campaignId"] for c in listed] == [campaign["campaignId"]]
    assert listed[0]["progress"] == 1.0
    assert http.get("/api/campaigns", headers=BRAVO).json()["campaigns"] == []

    # A retry moves the job out of failed and out of its error code's index.
    retried = http.post(f"/api/jobs/{sent[1]}/retry", json={"accountToken": DEFAULT_AUTH_TOKEN},
                        headers=ALPHA)  # fmt: skip
    assert retried.status_code == 200, retried.text
    settled(http, [sent[1]])
    assert http.get("/api/jobs", headers=ALPHA, params={"status": "failed"}).json()["jobs"] == []
    assert http.get("/api/jobs", headers=ALPHA, params={"errorCode": 21408}).json()["jobs"] == []
    ok = http.get("/api/jobs", headers=ALPHA, params={"status": "succeeded", "limit": 100}).json()
    assert set(ids(ok)) == set(sent + members)
    for status in ("queued", "running", "retrying", "failed"):
        assert redis_conn.zcard(keys.index_status("alpha", status)) == 0, status


def test_indexes_expire_with_the_records(
    api: tuple[TestClient, Client], redis_conn: redis.Redis
) -> None:
    http, jobs = api
    ttl = jobs.settings.result_ttl
    stale = "0" * 32
    redis_conn.zadd(keys.index_all("alpha"), {stale: time.time() - ttl - 5})
    job_id = http.post("/api/twilio/sendSms", json=SEED_SMS, headers=ALPHA).json()["jobId"]
    for key in (
        keys.index_all("alpha"),
        keys.index_status("alpha", "queued"),
        keys.index_to("alpha", jobs.cipher.digest(SEED_SMS["to"])),
    ):
        assert redis_conn.zrange(key, 0, -1) == [job_id], key  # the expired entry is trimmed
        assert ttl - 5 <= redis_conn.ttl(key) <= ttl, key
    assert redis_conn.ttl(keys.job(job_id)) <= redis_conn.ttl(keys.index_all("alpha"))


def test_bad_queries_are_400s(api: tuple[TestClient, Client]) -> None:
    http, _ = api
    for params in (
        {"status": "sideways"},
        {"cursor": "not-a-cursor"},
        {"limit": 0},
        {"errorCode": "x"},
        {"since": "yesterday"},
    ):
        answer = http.get("/api/jobs", headers=ALPHA, params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.json()["callback"] == "error"
