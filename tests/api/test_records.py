"""The public Python API answers with typed records: `Client` (Redis) and `HttpClient` /
`AsyncHttpClient` (the HTTP API) give the same record types for the same operation, and each
record dumps to exactly the bytes the HTTP API answers with."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import BaseModel

from producer.api import create_app
from tests.conftest import SEED_SMS
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from twilio_jobs import (
    Accepted,
    AsyncHttpClient,
    CampaignAccepted,
    CampaignJobs,
    CampaignStatus,
    Client,
    FailedDelivery,
    HttpClient,
    JobRecord,
    JobStatus,
    Suppression,
    SuppressionPage,
    keys,
)
from twilio_jobs.errors import CampaignNotFound, Conflict, JobNotFound
from twilio_jobs.gates import Gates

HOOK = "https://hooks.example.com/jobs"
SMS = {
    "account_sid": SEED_SMS["accountSid"],
    "account_token": SEED_SMS["accountToken"],
    "from_": SEED_SMS["from"],
    "to": SEED_SMS["to"],
    "body": SEED_SMS["body"],
}
CAMPAIGN = {
    "account_sid": DEFAULT_ACCOUNT_SID,
    "account_token": DEFAULT_AUTH_TOKEN,
    "from_": "+15005550006",
    "body": "Hi {{name}} é",
    "recipients": [
        {"to": "+14155550100", "name": "Ann"},
        {"to": "+14155550100", "name": "Ann"},
        {"to": "not a number"},
        {"to": "+14155550101"},
        {"to": "+14155550102", "name": "Bo"},
    ],
}


def api_bytes(record: BaseModel, **dump: Any) -> bytes:
    """A record as the HTTP API renders it (FastAPI's JSONResponse)."""
    shown = record.model_dump(mode="json", **dump)
    return json.dumps(shown, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.fixture
def both(client: Client) -> Iterator[tuple[Client, HttpClient, TestClient]]:
    with TestClient(create_app(client.settings, client)) as api:
        yield client, HttpClient(http=api), api


def exhausted_webhook(jobs: Client, conn: redis.Redis, job_id: str) -> str:
    delivery = jobs.webhooks.enqueue(job_id, "job.succeeded")
    assert delivery
    conn.hset(keys.webhook(delivery), mapping={"status": "failed", "attempts": "8"})
    conn.hset(keys.webhook(delivery), "lastError", "HTTP 503")
    conn.zadd(keys.WEBHOOKS_FAILED, {delivery: time.time()})
    return delivery


def test_sends_and_jobs_give_the_same_records(
    both: tuple[Client, HttpClient, TestClient], redis_conn: redis.Redis
) -> None:
    jobs, http, api = both
    direct = jobs.send_sms(**SMS, callback_url=HOOK)
    over_http = http.send_sms(**SMS, callback_url=HOOK)
    for accepted in (direct, over_http):
        assert type(accepted) is Accepted and accepted.status is JobStatus.queued
        assert accepted.statusUrl == f"/api/jobs/{accepted.jobId}"
    again = jobs.send_sms(**SMS, idempotency_key="same")
    assert jobs.send_sms(**SMS, idempotency_key="same") == again

    for job_id in (direct.jobId, over_http.jobId):
        record = jobs.get(job_id)
        assert type(record) is JobRecord and record == http.get(job_id)
        answer = api.get(f"/api/jobs/{job_id}")
        assert answer.content == api_bytes(record)
        assert JobRecord.model_validate_json(answer.content) == record
        assert jobs.wait(job_id, 0.05) == http.wait(job_id, 0.05) == record

    cancelled = jobs.cancel(direct.jobId)
    assert type(cancelled) is JobRecord and cancelled.status is JobStatus.cancelled
    assert cancelled.error is not None and cancelled.error.message == "Job was cancelled"
    assert http.cancel(over_http.jobId).result == cancelled.result
    assert api_bytes(jobs.get(direct.jobId)) == api.get(f"/api/jobs/{direct.jobId}").content
    for client in (jobs, http):
        with pytest.raises(
            Conflict, match="Only a failed job can be retried; this one is cancelled"
        ):
            client.retry(direct.jobId)
        with pytest.raises(JobNotFound, match="Job not found: nope"):
            client.get("nope")

    # An exhausted result webhook: listed and replayed alike.
    delivery = exhausted_webhook(jobs, redis_conn, direct.jobId)
    record = jobs.get(direct.jobId)
    assert record.webhook is not None and record.webhook.id == delivery
    assert api.get(f"/api/jobs/{direct.jobId}").content == api_bytes(record)
    listed = jobs.failed_webhooks()
    assert [type(d) for d in listed] == [FailedDelivery] and listed == http.failed_webhooks()
    assert listed[0].id == delivery and listed[0].lastError == "HTTP 503"
    assert api.get("/api/webhooks/failed").content == (
        b'{"deliveries":[' + api_bytes(listed[0]) + b"]}"
    )
    replayed = jobs.replay_webhook(direct.jobId)
    assert type(replayed) is JobRecord and replayed.webhook and replayed.webhook.status == "pending"
    exhausted_webhook(jobs, redis_conn, direct.jobId)
    assert http.replay_webhook(direct.jobId).webhook == jobs.get(direct.jobId).webhook
    for client in (jobs, http):
        with pytest.raises(Conflict, match="no exhausted webhook delivery"):
            client.replay_webhook(direct.jobId)


def test_campaigns_give_the_same_records(both: tuple[Client, HttpClient, TestClient]) -> None:
    jobs, http, api = both
    dry = jobs.create_campaign(dry_run=True, **CAMPAIGN)
    assert type(dry) is CampaignAccepted and dry.dryRun and dry.campaignId is None
    assert dry == http.create_campaign(dry_run=True, **CAMPAIGN)
    assert dry.accepted == 2 and dry.duplicates == 1 and len(dry.rejected) == 2
    answer = api.post("/api/campaigns", params={"dryRun": "true"}, json=_camel(CAMPAIGN))
    assert answer.content == api_bytes(dry)

    direct = jobs.create_campaign(**CAMPAIGN, callback_url=HOOK)
    over_http = http.create_campaign(**CAMPAIGN)
    for created in (direct, over_http):
        assert type(created) is CampaignAccepted and not created.dryRun
        assert created.statusUrl == f"/api/campaigns/{created.campaignId}"
    assert direct.model_dump(exclude={"campaignId", "statusUrl"}) == over_http.model_dump(
        exclude={"campaignId", "statusUrl"}
    )
    assert direct.campaignId and over_http.campaignId
    campaign_id = direct.campaignId

    status = jobs.campaign_status(campaign_id)
    assert type(status) is CampaignStatus and status == http.campaign_status(campaign_id)
    assert status.total == 2 and status.counts["queued"] == 2 and status.state == "active"
    answer = api.get(f"/api/campaigns/{campaign_id}")
    assert answer.content == api_bytes(status)
    assert CampaignStatus.model_validate_json(answer.content) == status

    page = jobs.campaign_jobs(campaign_id, limit=1)
    assert type(page) is CampaignJobs and page == http.campaign_jobs(campaign_id, limit=1)
    assert [type(r) for r in page.jobs] == [JobRecord] and page.nextCursor == "1"
    answer = api.get(f"/api/campaigns/{campaign_id}/jobs", params={"limit": 1})
    assert answer.content == api_bytes(page, exclude_unset=True)
    assert b'"webhook"' not in answer.content  # as the store holds it: none queued yet
    assert CampaignJobs.model_validate_json(answer.content) == page
    assert jobs.webhooks.enqueue(page.jobs[0].jobId, "job.succeeded")
    page = jobs.campaign_jobs(campaign_id)
    assert page == http.campaign_jobs(campaign_id) and page.jobs[0].webhook
    answer = api.get(f"/api/campaigns/{campaign_id}/jobs")
    assert answer.content == api_bytes(page, exclude_unset=True)
    assert answer.content.count(b'"webhook"') == 1
    rest = http.campaign_jobs(campaign_id, status=JobStatus.queued, cursor=1)
    assert rest == jobs.campaign_jobs(campaign_id, status=JobStatus.queued, cursor=1)
    assert len(rest.jobs) == 1 and rest.nextCursor is None

    paused = jobs.pause_campaign(campaign_id)
    assert paused.state == "paused" and http.resume_campaign(campaign_id).state == "active"
    assert http.pause_campaign(campaign_id) == jobs.campaign_status(campaign_id)
    assert jobs.resume_campaign(campaign_id).state == "active"
    cancelled = http.cancel_campaign(over_http.campaignId)
    assert type(cancelled) is CampaignStatus and cancelled.counts["cancelled"] == 2
    assert jobs.cancel_campaign(campaign_id).state == "cancelled"
    answer = api.post(f"/api/campaigns/{campaign_id}/cancel")
    assert answer.content == api_bytes(jobs.campaign_status(campaign_id))
    for client in (jobs, http):
        with pytest.raises(CampaignNotFound, match="Campaign not found: CPnope"):
            client.campaign_status("CPnope")
        with pytest.raises(CampaignNotFound):
            client.campaign_jobs("CPnope")


def test_suppressions_give_the_same_records(
    both: tuple[Client, HttpClient, TestClient], redis_conn: redis.Redis
) -> None:
    jobs, http, api = both
    gates = Gates(redis_conn)
    for sender, to in (("+15005550006", "+14155550100"), ("MG1", "+14155550100"), ("MG1", "+1")):
        gates.suppress(DEFAULT_ACCOUNT_SID, sender, to, "job-1", time.time())
    page = jobs.list_suppressions(DEFAULT_ACCOUNT_SID)
    assert type(page) is SuppressionPage and page == http.list_suppressions(DEFAULT_ACCOUNT_SID)
    assert [type(s) for s in page.suppressions] == [Suppression] * 3
    assert {s.code for s in page.suppressions} == {21610} and page.nextCursor is None
    answer = api.get("/api/suppressions", params={"accountSid": DEFAULT_ACCOUNT_SID})
    assert answer.content == api_bytes(page, exclude_unset=True)
    assert SuppressionPage.model_validate_json(answer.content) == page
    one = http.list_suppressions(DEFAULT_ACCOUNT_SID, to="+1")
    assert [s.sender for s in one.suppressions] == ["MG1"]
    assert one == jobs.list_suppressions(DEFAULT_ACCOUNT_SID, to="+1")
    assert http.lift_suppression(DEFAULT_ACCOUNT_SID, "+1") == 1
    assert jobs.lift_suppression(DEFAULT_ACCOUNT_SID, "+14155550100", "MG1") == 1
    assert http.lift_suppression(DEFAULT_ACCOUNT_SID, "+14155550100") == 1
    assert jobs.list_suppressions(DEFAULT_ACCOUNT_SID).suppressions == []


def test_async_client_gives_the_same_records(client: Client) -> None:
    app = create_app(client.settings, client)
    created = client.create_campaign(**CAMPAIGN)
    assert created.campaignId

    async def run() -> tuple[Accepted, JobRecord, CampaignStatus, CampaignJobs]:
        transport = httpx.ASGITransport(app=app)
        async with AsyncHttpClient(
            http=httpx.AsyncClient(transport=transport, base_url="http://api")
        ) as jobs:
            accepted = await jobs.send_sms(**SMS)
            record = await jobs.get(accepted.jobId)
            assert created.campaignId
            status = await jobs.pause_campaign(created.campaignId)
            page = await jobs.campaign_jobs(created.campaignId)
            assert await jobs.failed_webhooks() == []
            return accepted, record, status, page

    accepted, record, status, page = asyncio.run(run())
    assert type(accepted) is Accepted and record == client.get(accepted.jobId)
    assert status == client.campaign_status(created.campaignId) and status.state == "paused"
    assert page == client.campaign_jobs(created.campaignId)


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    from twilio_jobs.submission import camel

    return camel(fields)
