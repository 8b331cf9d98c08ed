"""twilio_jobs.HttpClient and AsyncHttpClient: the HTTP API from Python, typed records back,
the error envelope raised as the error tree's class with the server's message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import SEED_SMS
from twilio_jobs import AsyncHttpClient, HttpClient, JobRecord
from twilio_jobs.client import Client
from twilio_jobs.errors import Conflict, InvalidRequest, JobNotFound
from twilio_jobs.lifecycle import JobStatus
from twilio_jobs.schemas import JobKind, JobPage

FIELDS = {
    "account_sid": SEED_SMS["accountSid"],
    "account_token": SEED_SMS["accountToken"],
    "from_": SEED_SMS["from"],
    "to": SEED_SMS["to"],
    "body": SEED_SMS["body"],
}


def test_sync_client_sends_reads_cancels_and_raises(client: Client) -> None:
    app = create_app(client.settings, client)
    with TestClient(app) as http:
        jobs = HttpClient(http=http)
        accepted = jobs.send_sms(**FIELDS)
        assert accepted.status is JobStatus.queued
        assert accepted.statusUrl == f"/api/jobs/{accepted.jobId}"
        record = jobs.get(accepted.jobId)
        assert isinstance(record, JobRecord) and record.kind is JobKind.sendSms
        cancelled = jobs.cancel(accepted.jobId)
        assert cancelled.status is JobStatus.cancelled
        assert cancelled.result == {
            "callback": "error",
            "contextWrites": {"to": "Job was cancelled"},
        }
        assert jobs.wait(accepted.jobId, timeout=1).status is JobStatus.cancelled
        with pytest.raises(
            Conflict, match="Only a failed job can be retried; this one is cancelled"
        ):
            jobs.retry(accepted.jobId)
        with pytest.raises(JobNotFound, match="Job not found: nope"):
            jobs.get("nope")
        with pytest.raises(
            InvalidRequest,
            match=r"\[HTTP 400\] Unable to create record: A 'To' phone number is required.",
        ):
            jobs.send_sms(**{**FIELDS, "to": None})
        again = jobs.send(JobKind.sendSms, idempotency_key="k-1", **FIELDS)
        assert jobs.send(JobKind.sendSms, idempotency_key="k-1", **FIELDS).jobId == again.jobId
        # Search: the same page through HTTP as through the client library.
        page = jobs.list_jobs(status="cancelled", to=SEED_SMS["to"], limit=10)
        assert isinstance(page, JobPage) and [j.jobId for j in page.jobs] == [accepted.jobId]
        assert page == client.list_jobs(status="cancelled", to=SEED_SMS["to"], limit=10)
        newest = jobs.list_jobs(limit=1, since=datetime.now(UTC) - timedelta(minutes=5))
        assert [j.jobId for j in newest.jobs] == [again.jobId] and newest.nextCursor
        with pytest.raises(InvalidRequest, match="Invalid cursor"):
            jobs.list_jobs(cursor="nope")


def test_async_client_sends_and_reads(client: Client) -> None:
    app = create_app(client.settings, client)

    async def run() -> tuple[JobRecord, str]:
        transport = httpx.ASGITransport(app=app)
        async with AsyncHttpClient(
            http=httpx.AsyncClient(transport=transport, base_url="http://api")
        ) as jobs:
            accepted = await jobs.send_sms(**FIELDS)
            record = await jobs.get(accepted.jobId)
            try:
                await jobs.cancel("nope")
            except JobNotFound as exc:
                return record, exc.message
            raise AssertionError("no error")

    record, message = asyncio.run(run())
    assert record.status is JobStatus.queued and record.twilioSid is None
    assert message == "Job not found: nope"
