"""The whole path, for real: HTTP API -> Redis -> Celery worker process -> fake Twilio."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import (
    SEED_CALL,
    SEED_MMS,
    SEED_SMS,
    WorkerProcess,
    make_settings,
    service_env,
    wait_until,
)
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs.client import Client
from twilio_jobs.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def api(settings: Settings, client: Client) -> Iterator[TestClient]:
    with TestClient(create_app(settings, client)) as http:
        yield http


def final(api: TestClient, job_id: str, wait: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        record = api.get(f"/api/jobs/{job_id}", params={"wait": 5}).json()
        if record["status"] in ("succeeded", "failed", "cancelled", "suppressed"):
            return record
        assert time.monotonic() < deadline, record


@pytest.mark.parametrize(
    ("route", "body", "prefix", "resource"),
    [
        ("sendSms", SEED_SMS, "SM", "Messages"),
        ("sendMms", SEED_MMS, "MM", "Messages"),
        ("makeCall", SEED_CALL, "CA", "Calls"),
    ],
)
def test_seed_request_succeeds_with_twilio_resource(
    api: TestClient,
    worker: WorkerProcess,
    fake_twilio: FakeTwilio,
    route: str,
    body: dict[str, str],
    prefix: str,
    resource: str,
) -> None:
    started = time.monotonic()
    answer = api.post(f"/api/twilio/{route}", json=body)
    assert answer.status_code == 202
    accepted = answer.json()
    assert time.monotonic() - started < 1.0
    assert accepted["status"] == "queued"
    assert accepted["statusUrl"] == f"/api/jobs/{accepted['jobId']}"

    record = final(api, accepted["jobId"])
    assert record["status"] == "succeeded"
    assert record["attempts"] == 1
    assert record["kind"] == route
    envelope = record["result"]
    assert envelope["callback"] == "success"
    created = envelope["contextWrites"]["to"]
    assert created["sid"].startswith(prefix)
    assert created["sid"] == record["twilioSid"]
    assert created["to"] == body["to"] and created["from"] == body["from"]
    assert created["account_sid"] == DEFAULT_ACCOUNT_SID
    assert created["status"] == "queued"
    stored = fake_twilio.messages if resource == "Messages" else fake_twilio.calls
    assert [r["sid"] for r in stored] == [created["sid"]]


# The seed's error table, row by row, with its exact text.
def test_missing_credentials(api: TestClient, redis_conn: redis.Redis) -> None:
    body = {k: v for k, v in SEED_SMS.items() if k not in ("accountSid", "accountToken")}
    answer = api.post("/api/twilio/sendSms", json=body)
    assert answer.status_code == 400
    assert answer.json() == {
        "callback": "error",
        "contextWrites": {"to": "Credentials are required to create a Client"},
    }
    assert not redis_conn.keys("tj:job:*")


def test_wrong_account_sid(api: TestClient, worker: WorkerProcess) -> None:
    body = {**SEED_SMS, "accountSid": "AC5f37acb25ffaeb498a78"}
    job_id = api.post("/api/twilio/sendSms", json=body).json()["jobId"]
    record = final(api, job_id)
    assert record["status"] == "failed"
    assert record["result"] == {
        "callback": "error",
        "contextWrites": {
            "to": "[HTTP 404] Unable to create record: The requested resource "
            "/2010-04-01/Accounts/AC5f37acb25ffaeb498a78/Messages.json was not found"
        },
    }
    assert record["error"]["status"] == 404 and record["error"]["code"] == 20404


def test_wrong_token(api: TestClient, worker: WorkerProcess, fake_twilio: FakeTwilio) -> None:
    job_id = api.post("/api/twilio/sendSms", json={**SEED_SMS, "accountToken": "nope"}).json()[
        "jobId"
    ]
    record = final(api, job_id)
    assert record["result"]["contextWrites"]["to"] == (
        "[HTTP 401] Unable to create record: Authenticate"
    )
    assert record["attempts"] == 1 and fake_twilio.create_attempts == 1


def test_missing_from(api: TestClient, redis_conn: redis.Redis) -> None:
    body = {k: v for k, v in SEED_SMS.items() if k != "from"}
    answer = api.post("/api/twilio/sendSms", json=body)
    assert answer.status_code == 400
    assert answer.json()["contextWrites"]["to"] == (
        '[HTTP 400] Unable to create record: A "From" phone number is required.'
    )
    assert not redis_conn.keys("tj:job:*")


def test_invalid_method(api: TestClient, redis_conn: redis.Redis) -> None:
    answer = api.post("/api/twilio/makeCall", json={**SEED_CALL, "method": "TEST"})
    assert answer.status_code == 400
    assert answer.json() == {
        "callback": "error",
        "contextWrites": {"to": "[HTTP 400] Unable to create record: Method is not valid: TEST"},
    }
    assert not redis_conn.keys("tj:job:*")


def test_twilio_side_400_is_the_failed_jobs_envelope(
    client: Client, worker: WorkerProcess, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_fault(400, code=21603, message='A "From" phone number is required.')
    job_id = client.send_sms(**_sms()).jobId
    record = client.wait(job_id, 20)
    assert record.result["contextWrites"]["to"] == (
        '[HTTP 400] Unable to create record: A "From" phone number is required.'
    )
    assert record.attempts == 1 and fake_twilio.create_attempts == 1


def _sms(**extra: Any) -> dict[str, Any]:
    return {
        "account_sid": DEFAULT_ACCOUNT_SID,
        "account_token": DEFAULT_AUTH_TOKEN,
        "from_": "+15005550006",
        "to": "+14155550100",
        "body": "hello",
        **extra,
    }


def test_429_retries_honouring_retry_after(
    client: Client, worker: WorkerProcess, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_fault(429, count=1, retry_after=1.0)
    started = time.monotonic()
    job_id = client.send_sms(**_sms()).jobId
    wait_until(lambda: client.get(job_id).status == "retrying", timeout=10, interval=0.01)
    retrying = client.get(job_id)
    assert retrying.attempts == 0  # a 429 does not use up an attempt
    assert retrying.error.status == 429 and retrying.error.retryable is True
    record = client.wait(job_id, 20)
    assert record.status == "succeeded" and record.attempts == 1
    assert time.monotonic() - started >= 1.0
    assert fake_twilio.create_attempts == 2 and fake_twilio.created_count == 1


def test_503_exhausts_max_attempts_with_last_envelope(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Any
) -> None:
    env = service_env(fake_twilio.url, TWILIO_JOBS_MAX_ATTEMPTS="3")
    start_worker(env)
    jobs = Client(make_settings(env))
    fake_twilio.add_fault(503, count=10)
    record = jobs.wait(jobs.send_sms(**_sms()).jobId, 20)
    assert record.status == "failed" and record.attempts == 3
    assert record.result["contextWrites"]["to"] == (
        "[HTTP 503] Unable to create record: Service Unavailable"
    )
    assert fake_twilio.create_attempts == 3 and fake_twilio.created_count == 0
    jobs.close()


def test_connection_refused_is_retried(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Any
) -> None:
    env = service_env("http://127.0.0.1:9", TWILIO_JOBS_MAX_ATTEMPTS="2")
    start_worker(env)
    jobs = Client(make_settings(env))
    record = jobs.wait(jobs.send_sms(**_sms()).jobId, 20)
    assert record.status == "failed" and record.attempts == 2
    assert record.result["contextWrites"]["to"].startswith("Could not connect to Twilio")
    jobs.close()


def test_ambiguous_500_after_create_adopts_the_sid(
    client: Client, worker: WorkerProcess, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_fault(500, count=1, create_anyway=True)
    record = client.wait(client.send_sms(**_sms()).jobId, 20)
    assert record.status == "succeeded"
    assert [m["sid"] for m in fake_twilio.messages] == [record.twilioSid]


def test_ambiguous_500_without_create_sends_once(
    client: Client, worker: WorkerProcess, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_fault(500, count=1)
    record = client.wait(client.send_sms(**_sms()).jobId, 20)
    assert record.status == "succeeded" and record.attempts == 2
    assert fake_twilio.created_count == 1


def test_read_timeout_after_create_is_not_sent_twice(
    client: Client, worker: WorkerProcess, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_fault(200, count=1, create_anyway=True, delay=4.0)
    record = client.wait(client.send_sms(**_sms(body="slow")).jobId, 30)
    assert record.status == "succeeded"
    assert fake_twilio.count_by(body="slow") == 1


def _all_redis_text(conn: redis.Redis) -> str:
    parts: list[str] = []
    for key in conn.scan_iter(count=1000):
        parts.append(key)
        kind = conn.type(key)
        if kind == "string":
            parts.append(str(conn.get(key)))
        elif kind == "hash":
            parts.extend(f"{k}={v}" for k, v in conn.hgetall(key).items())
        elif kind == "list":
            parts.extend(conn.lrange(key, 0, -1))
        elif kind == "set":
            parts.extend(conn.smembers(key))
        elif kind == "zset":
            parts.extend(conn.zrange(key, 0, -1))
    return "\n".join(parts)


def test_auth_token_never_in_redis_or_logs(
    api: TestClient,
    worker: WorkerProcess,
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    fake_twilio.add_fault(503, count=1000, match_to="+14155550199")
    ids = [
        api.post("/api/twilio/sendSms", json=SEED_SMS).json()["jobId"],
        api.post("/api/twilio/makeCall", json=SEED_CALL).json()["jobId"],
        api.post("/api/twilio/sendSms", json={**SEED_SMS, "to": "+14155550199"}).json()["jobId"],
    ]
    final(api, ids[0])
    final(api, ids[1])
    wait_until(lambda: api.get(f"/api/jobs/{ids[2]}").json()["status"] == "retrying")
    # While the retrying job still holds its (encrypted) token, and after the others dropped it.
    dump = _all_redis_text(redis_conn)
    assert "tj:job:" + ids[2] in dump
    assert redis_conn.hget(f"tj:job:{ids[2]}", "cred")
    assert not redis_conn.hget(f"tj:job:{ids[0]}", "cred")
    assert DEFAULT_AUTH_TOKEN not in dump
    assert DEFAULT_AUTH_TOKEN not in worker.log_text()
    assert DEFAULT_AUTH_TOKEN not in caplog.text
    for job_id in ids:
        assert DEFAULT_AUTH_TOKEN not in str(api.get(f"/api/jobs/{job_id}").json())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"to": "+14155550100", ', "Malformed JSON body"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'{"to": 5}', "Invalid field 'to'"),
        (b'{"to": "+14155550100", "bogus": 1}', "Unknown field: bogus"),
        (b'{"to": "not a number"}', "Invalid field 'to'"),
        (b'{"body": "' + b"x" * 1601 + b'"}', "Invalid field 'body'"),
        (b'{"from": "+15005550006", "body": "hi"}', "A 'To' phone number is required."),
        (b'{"to": "+14155550100", "sendAt": "tomorrow"}', "Invalid field 'sendAt'"),
    ],
)
def test_bad_input_is_a_400_envelope_and_no_job(
    api: TestClient, redis_conn: redis.Redis, content: bytes, expected: str
) -> None:
    answer = api.post(
        "/api/twilio/sendSms", content=content, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["callback"] == "error"
    assert expected in body["contextWrites"]["to"]
    assert not redis_conn.keys("tj:job:*")


@pytest.mark.parametrize(
    ("route", "body"),
    [("sendSms", SEED_SMS), ("sendMms", SEED_MMS), ("makeCall", SEED_CALL)],
)
def test_an_impossible_number_is_a_400_in_twilios_words(
    api: TestClient, redis_conn: redis.Redis, route: str, body: dict[str, str]
) -> None:
    """The seed's example `to` cannot exist (11 digits after +1): Twilio would answer 21211."""
    answer = api.post(f"/api/twilio/{route}", json={**body, "to": "+150055444006"})
    assert answer.status_code == 400
    assert answer.json() == {
        "callback": "error",
        "contextWrites": {
            "to": "[HTTP 400] Unable to create record: Invalid 'To' Phone Number: +150055444006"
        },
    }
    assert not redis_conn.keys("tj:job:*")
    # A number merely outside phonenumbers' metadata (a new range) is Twilio's to judge.
    assert api.post(f"/api/twilio/{route}", json={**body, "to": "+19995550123"}).status_code == 202


def test_oversized_body_is_413(api: TestClient) -> None:
    answer = api.post("/api/twilio/sendSms", content=b"{" + b" " * 70000 + b"}")
    assert answer.status_code == 413
    assert answer.json()["callback"] == "error"


def test_unknown_job_is_404(api: TestClient) -> None:
    answer = api.get("/api/jobs/0123456789abcdef0123456789abcdef")
    assert answer.status_code == 404
    assert answer.json() == {
        "callback": "error",
        "contextWrites": {"to": "Job not found: 0123456789abcdef0123456789abcdef"},
    }


def test_long_poll_returns_when_final(
    api: TestClient, worker: WorkerProcess, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.set_latency(0.5)
    job_id = api.post("/api/twilio/sendSms", json=SEED_SMS).json()["jobId"]
    started = time.monotonic()
    record = api.get(f"/api/jobs/{job_id}", params={"wait": 10}).json()
    assert record["status"] == "succeeded"
    assert 0.3 < time.monotonic() - started < 5


def test_health_and_docs(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/twilio/sendSms", "/api/twilio/sendMms", "/api/twilio/makeCall"} <= set(paths)


def test_client_library_without_http(
    client: Client, worker: WorkerProcess, fake_twilio: FakeTwilio
) -> None:
    job_id = client.make_call(
        account_sid=DEFAULT_ACCOUNT_SID,
        account_token=DEFAULT_AUTH_TOKEN,
        from_="+15005550006",
        to="+14155550100",
        twiml="<Response><Say>hi</Say></Response>",
        timeout=20,
        record=True,
    ).jobId
    record = client.wait(job_id, 20)
    assert record.status == "succeeded" and record.twilioSid.startswith("CA")
    assert fake_twilio.calls[0]["to"] == "+14155550100"


def test_server_default_credentials(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Any
) -> None:
    env = service_env(
        fake_twilio.url,
        TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
    )
    start_worker(env)
    jobs = Client(make_settings(env))
    job_id = jobs.send_sms(from_="+15005550006", to="+14155550100", body="defaults").jobId
    assert jobs.wait(job_id, 20).status == "succeeded"
    jobs.close()
