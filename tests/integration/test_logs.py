"""What an operator reads: JSON lines from a default worker, one per job that ends, and the
API's access log with the request id that the job record keeps."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import SEED_SMS, WorkerProcess, make_settings, service_env, wait_until
from tests.fake_twilio import DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs.client import Client

pytestmark = pytest.mark.integration


def json_lines(text: str) -> list[dict[str, object]]:
    out = []
    for raw in text.splitlines():
        if raw.startswith("{"):
            out.append(json.loads(raw))
    return out


def test_a_job_ends_in_one_json_line_and_its_request_id_is_kept(
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = service_env(fake_twilio.url, TWILIO_JOBS_LOG_FORMAT="json")
    worker = start_worker(env, concurrency=None)
    jobs = Client(make_settings(env))
    body = {**SEED_SMS, "body": "secret code 424242"}
    with (
        caplog.at_level(logging.INFO, logger="twilio_jobs.access"),
        TestClient(create_app(jobs.settings, jobs)) as api,
    ):
        answer = api.post(
            "/api/twilio/sendSms", json=body, headers={"X-Request-Id": "req-7f3a.checkout"}
        )
        assert answer.status_code == 202
        assert answer.headers["x-request-id"] == "req-7f3a.checkout"
        job_id = answer.json()["jobId"]
        record = api.get(f"/api/jobs/{job_id}", params={"wait": 20}).json()
        fresh = api.get("/healthz")
    assert record["status"] == "succeeded" and record["requestId"] == "req-7f3a.checkout"
    assert len(fresh.headers["x-request-id"]) == 32  # none given: a new one
    access = [r for r in caplog.records if r.name == "twilio_jobs.access"]
    sent = [r for r in access if getattr(r, "path", "") == "/api/twilio/sendSms"]
    assert sent and sent[0].requestId == "req-7f3a.checkout" and sent[0].status == 202  # type: ignore[attr-defined]

    def ended() -> list[dict[str, object]]:
        return [e for e in json_lines(worker.log_text()) if e.get("jobId") == job_id]

    (line,) = wait_until(ended)
    assert line["outcome"] == "succeeded" and line["kind"] == "sendSms"
    assert line["twilioSid"] == record["twilioSid"] and line["attempts"] == 1
    assert line["to"] == "+1********23" and line["level"] == "INFO"
    assert isinstance(line["queueSeconds"], float) and isinstance(line["sendSeconds"], float)
    text = worker.log_text()
    assert "424242" not in text and DEFAULT_AUTH_TOKEN not in text and body["to"] not in text
    # Celery's own lines go through the same handler.
    assert any("ready." in str(e.get("message")) for e in json_lines(text))
    jobs.close()
