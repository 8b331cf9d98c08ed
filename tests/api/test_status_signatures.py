"""Twilio's status callbacks, signed by twilio-python's own `RequestValidator.compute_signature`
and checked by its `validate` (producer/twilio_signatures.py): a form, and a JSON body signed
through the `bodySHA256` in its URL. A bad signature is a 403 and changes nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from producer.api import create_app
from tests.conftest import SEED_SMS, make_settings
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from twilio_jobs import keys
from twilio_jobs.client import Client
from twilio_jobs.schemas import JobKind
from twilio_jobs.status_callbacks import callback_token

PUBLIC = "https://jobs.example.com"
HOOK = "https://hooks.example.com/twilio-jobs"
VALIDATOR = RequestValidator(DEFAULT_AUTH_TOKEN)


class Form(dict[str, list[str]]):
    def getall(self, name: str) -> list[str]:
        return self[name]


@pytest.fixture
def jobs(env: dict[str, str]) -> Iterator[Client]:
    settings = make_settings(
        {
            **env,
            "TWILIO_JOBS_PUBLIC_URL": PUBLIC,
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        }
    )
    client = Client(settings)
    yield client
    client.close()


@pytest.fixture
def api(jobs: Client) -> Iterator[TestClient]:
    with TestClient(create_app(jobs.settings, jobs)) as http:
        yield http


def _job(jobs: Client) -> tuple[str, str]:
    job_id = jobs.submit(JobKind.sendSms, {**SEED_SMS, "callbackUrl": HOOK}).job_id
    path = f"/api/twilio/status/{job_id}?token={callback_token(jobs.cipher, job_id)}"
    return job_id, path


def _params(status: str) -> dict[str, str]:
    return {"AccountSid": DEFAULT_ACCOUNT_SID, "MessageSid": "SM1", "MessageStatus": status}


def _events(conn: redis.Redis, job_id: str) -> list[str]:
    return sorted(
        str(conn.hget(keys.webhook(str(d)), "event"))
        for d in conn.zrange(keys.WEBHOOK_SCHEDULE, 0, -1)
        if str(d).startswith(job_id)
    )


def test_a_form_signed_by_twilio_is_accepted(
    api: TestClient, jobs: Client, redis_conn: redis.Redis
) -> None:
    job_id, path = _job(jobs)
    params = _params("sent")
    signature = VALIDATOR.compute_signature(PUBLIC + path, params)
    answer = api.post(path, data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 204, answer.text
    assert redis_conn.hget(keys.job(job_id), "deliveryStatus") == "sent"
    # the update and its webhook event were written together
    assert _events(redis_conn, job_id) == ["delivery.sent"]


def test_a_form_with_repeated_parameters(api: TestClient, jobs: Client) -> None:
    _, path = _job(jobs)
    pairs = [
        *_params("sent").items(),
        ("MediaUrl", "https://b.example/2"),
        ("MediaUrl", "https://a.example/1"),
    ]
    form = Form()
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    signature = VALIDATOR.compute_signature(PUBLIC + path, form)
    answer = api.post(
        path,
        content="&".join(f"{k}={v}" for k, v in pairs).encode(),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert answer.status_code == 204, answer.text


def test_a_json_body_signed_through_its_hash(
    api: TestClient, jobs: Client, redis_conn: redis.Redis
) -> None:
    job_id, path = _job(jobs)
    body = json.dumps(_params("delivered"))
    signed_path = f"{path}&bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = VALIDATOR.compute_signature(PUBLIC + signed_path, {})
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/json"}
    answer = api.post(signed_path, content=body, headers=headers)
    assert answer.status_code == 204, answer.text
    assert redis_conn.hget(keys.job(job_id), "deliveryStatus") == "delivered"
    assert _events(redis_conn, job_id) == ["delivery.delivered"]


def _forbidden(answer: Any) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json() == {
        "callback": "error",
        "contextWrites": {"to": "Invalid X-Twilio-Signature"},
    }


def test_bad_form_signatures_are_refused(
    api: TestClient, jobs: Client, redis_conn: redis.Redis
) -> None:
    job_id, path = _job(jobs)
    params = _params("sent")
    good = VALIDATOR.compute_signature(PUBLIC + path, params)
    before = redis_conn.hgetall(keys.job(job_id))
    for signature, data in (
        (RequestValidator("another-token").compute_signature(PUBLIC + path, params), params),
        (good, _params("failed")),  # a changed parameter
        (VALIDATOR.compute_signature("https://elsewhere.example" + path, params), params),
        ("", params),
    ):
        _forbidden(api.post(path, data=data, headers={"X-Twilio-Signature": signature}))
    _forbidden(api.post(path, data=params))  # unsigned
    assert redis_conn.hgetall(keys.job(job_id)) == before
    assert _events(redis_conn, job_id) == []


def test_bad_json_signatures_are_refused(
    api: TestClient, jobs: Client, redis_conn: redis.Redis
) -> None:
    job_id, path = _job(jobs)
    body = json.dumps(_params("delivered"))
    signed_path = f"{path}&bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signature = VALIDATOR.compute_signature(PUBLIC + signed_path, {})
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/json"}
    before = redis_conn.hgetall(keys.job(job_id))
    # the body changed under the same hash and signature
    _forbidden(api.post(signed_path, content=body.replace("delivered", "failed"), headers=headers))
    # a JSON body without its hash in the URL is not signed at all
    unsigned = {**headers, "X-Twilio-Signature": VALIDATOR.compute_signature(PUBLIC + path, {})}
    _forbidden(api.post(path, content=body, headers=unsigned))
    wrong = RequestValidator("another-token").compute_signature(PUBLIC + signed_path, {})
    _forbidden(
        api.post(signed_path, content=body, headers={**headers, "X-Twilio-Signature": wrong})
    )
    assert redis_conn.hgetall(keys.job(job_id)) == before
    bad = api.post(signed_path, content="[1, 2]", headers=headers)
    assert bad.status_code in (400, 403)
