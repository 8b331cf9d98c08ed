"""`startVerification`: Twilio Verify v2 through the same queue, ledger, retries, envelopes and
webhooks as the other kinds, against the fake's Verify (one base URL for both hosts, as
`TWILIO_API_BASE_URL` gives in tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import WorkerProcess, make_settings, service_env, wait_quiet, wait_until
from tests.fake_twilio import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_VERIFY_SERVICE_SID,
    VERIFY_MAX_SENDS,
    FakeTwilio,
)
from twilio_jobs.client import Client

pytestmark = pytest.mark.integration

TO = "+14155550123"
START = {
    "accountSid": DEFAULT_ACCOUNT_SID,
    "accountToken": DEFAULT_AUTH_TOKEN,
    "serviceSid": DEFAULT_VERIFY_SERVICE_SID,
    "to": TO,
    "channel": "sms",
    "locale": "fr",
    "customFriendlyName": "Acme",
}
READ_TIMEOUT = 2.0


class Hooks:
    """A result-webhook receiver: every POST body, decoded."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hooks.bodies.append(json.loads(raw))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def verify_api(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Callable[..., WorkerProcess]
) -> Iterator[TestClient]:
    """The API and a default worker, with the reconciliation delay left at its default."""
    env = service_env(fake_twilio.url, TWILIO_JOBS_WEBHOOK_ALLOW_PRIVATE="true")
    env.pop("TWILIO_JOBS_RECONCILE_DELAY")
    env["TWILIO_JOBS_READ_TIMEOUT"] = str(READ_TIMEOUT)
    start_worker(env)
    jobs = Client(make_settings(env))
    with TestClient(create_app(jobs.settings, jobs)) as api:
        yield api
    jobs.close()


def start(api: TestClient, **changes: Any) -> dict[str, Any]:
    answer = api.post("/api/twilio/startVerification", json={**START, **changes})
    assert answer.status_code == 202, answer.text
    record: dict[str, Any] = api.get(
        f"/api/jobs/{answer.json()['jobId']}", params={"wait": 30}
    ).json()
    return record


def test_a_verification_is_started_and_its_resource_is_the_result(
    verify_api: TestClient, fake_twilio: FakeTwilio, hooks: Hooks
) -> None:
    record = start(verify_api, callbackUrl=hooks.url)
    assert record["status"] == "succeeded" and record["kind"] == "startVerification"
    (verification,) = fake_twilio.verifications
    assert record["twilioSid"] == verification["sid"] and verification["sid"].startswith("VE")
    resource = record["result"]["contextWrites"]["to"]
    assert record["result"]["callback"] == "success"
    assert resource["status"] == "pending" and resource["to"] == TO
    assert resource["service_sid"] == DEFAULT_VERIFY_SERVICE_SID
    assert fake_twilio.verification_sends == 1
    # The webhook carries the same record.
    wait_until(lambda: hooks.bodies)
    assert hooks.bodies[0]["jobId"] == record["jobId"]
    assert hooks.bodies[0]["result"] == record["result"]


@pytest.mark.parametrize("mode", ["500-after-create", "read-timeout-after-create"])
def test_a_lost_answer_is_reconciled_not_sent_twice(
    verify_api: TestClient, fake_twilio: FakeTwilio, redis_conn: redis.Redis, mode: str
) -> None:
    delay = READ_TIMEOUT + 2 if mode == "read-timeout-after-create" else None
    fake_twilio.add_fault(500, match_to=TO, create_anyway=True, delay=delay, kind="Verifications")
    record = start(verify_api)
    wait_quiet(redis_conn, fake_twilio)
    assert record["status"] == "succeeded", record
    assert fake_twilio.verification_sends == 1  # one code, not two
    assert fake_twilio.create_attempts == 1
    assert record["twilioSid"] == fake_twilio.verifications[0]["sid"]


def test_a_refused_start_fails_at_once_and_a_busy_account_is_retried(
    verify_api: TestClient, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_fault(429, kind="Verifications")  # 20429: the account is busy
    assert start(verify_api)["status"] == "succeeded"
    for _ in range(VERIFY_MAX_SENDS - 1):
        assert start(verify_api)["status"] == "succeeded"
    attempts = fake_twilio.create_attempts
    # The sixth code to one number within ten minutes: 429 60203, final, not retried.
    record = start(verify_api)
    assert record["status"] == "failed"
    assert record["error"]["code"] == 60203 and record["attempts"] == 1
    assert record["result"] == {
        "callback": "error",
        "contextWrites": {"to": "[HTTP 429] Unable to create record: Max send attempts reached"},
    }
    assert fake_twilio.create_attempts == attempts + 1
    unknown = start(verify_api, serviceSid="VA" + "0" * 32)
    assert unknown["status"] == "failed" and unknown["error"]["code"] == 20404


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"serviceSid": "MG123"}, "Invalid field 'serviceSid'"),
        ({"channel": "pigeon"}, "Invalid field 'channel'"),
        ({"channel": "email", "to": "+14155550123"}, "must be an email address"),
        ({"to": "someone@example.com"}, "must be an E.164 number"),
        ({"to": "+1415"}, "[HTTP 400] Unable to create record: Invalid parameter `To`: +1415"),
        ({"to": None}, "Missing required parameter To"),
        ({"from": "+15005550006"}, "Unknown field: from"),
    ],
)
def test_bad_input_is_a_400_in_the_error_envelope(
    verify_api: TestClient, fake_twilio: FakeTwilio, changes: dict[str, Any], message: str
) -> None:
    answer = verify_api.post("/api/twilio/startVerification", json={**START, **changes})
    assert answer.status_code == 400
    body = answer.json()
    assert body["callback"] == "error" and message in body["contextWrites"]["to"]
    assert fake_twilio.create_attempts == 0


def test_an_email_verification_and_no_campaigns_of_verifications(
    verify_api: TestClient, fake_twilio: FakeTwilio
) -> None:
    record = start(verify_api, channel="email", to="someone@example.com")
    assert record["status"] == "succeeded"
    assert fake_twilio.verifications[0]["channel"] == "email"
    campaign = verify_api.post(
        "/api/campaigns",
        json={**START, "kind": "startVerification", "recipients": [{"to": TO}]},
    )
    assert campaign.status_code == 400
    assert "a campaign sends sendSms, sendMms or makeCall" in campaign.json()["contextWrites"]["to"]


def test_both_python_clients_start_verifications(
    verify_api: TestClient, fake_twilio: FakeTwilio
) -> None:
    from twilio_jobs import HttpClient

    client: Client = verify_api.app.state.client  # type: ignore[attr-defined]
    fields = {
        "account_sid": DEFAULT_ACCOUNT_SID,
        "account_token": DEFAULT_AUTH_TOKEN,
        "service_sid": DEFAULT_VERIFY_SERVICE_SID,
        "to": TO,
    }
    direct = client.start_verification(**fields)
    over_http = HttpClient(http=verify_api).start_verification(**fields)
    for accepted in (direct, over_http):
        assert client.wait(accepted.jobId, timeout=30).status == "succeeded"
    assert fake_twilio.verification_sends == 2  # one code per start, on one verification
    assert len(fake_twilio.verifications) == 1
