"""Result webhooks and Twilio status callbacks, for real: a worker process, the fake Twilio, a
webhook receiver on loopback and (for status callbacks) the API served by uvicorn."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient
from standardwebhooks import Webhook, WebhookVerificationError
from twilio.request_validator import RequestValidator

from producer.api import create_app
from tests.conftest import (
    ROOT,
    SEED_CALL,
    SEED_SMS,
    WorkerProcess,
    make_settings,
    service_env,
    wait_until,
)
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.services import free_port
from twilio_jobs import keys, verify_webhook
from twilio_jobs.client import Client
from twilio_jobs.schemas import JobKind, JobRecord
from twilio_jobs.settings import Settings
from twilio_jobs.signing import sign_webhook

pytestmark = pytest.mark.integration

# The spec's form of secret, in the middle of a rotation from one of the earlier plain form.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"integration-secret-0123456789abc").decode()
PREVIOUS_SECRET = "whsec-integration-0123456789"
FAST_RETRIES = {
    "TWILIO_JOBS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "TWILIO_JOBS_WEBHOOK_SECRET_PREVIOUS": PREVIOUS_SECRET,
    "TWILIO_JOBS_WEBHOOK_BACKOFF_BASE": "0.05",
    "TWILIO_JOBS_WEBHOOK_BACKOFF_MAX": "0.2",
    "TWILIO_JOBS_WEBHOOK_TIMEOUT": "2",
}


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> str:
        return self.headers["X-Twilio-Jobs-Event"]

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on loopback: records every POST and answers with the next scripted
    status (200 once the script runs out)."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.codes = list(codes or [])
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.deliveries.append(Delivery(dict(self.headers.items()), body))
                    code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hooks/twilio-jobs"

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(codes: list[int] | None = None) -> Receiver:
        started.append(Receiver(codes))
        return started[-1]

    yield start
    for item in started:
        item.close()


@pytest.fixture
def env(fake_twilio: FakeTwilio, redis_conn: redis.Redis) -> dict[str, str]:
    return service_env(fake_twilio.url, **FAST_RETRIES)


@pytest.fixture
def api(settings: Settings, client: Client) -> Iterator[TestClient]:
    with TestClient(create_app(settings, client)) as http:
        yield http


def send(client: Client, callback_url: str | None, body: dict[str, Any] = SEED_SMS) -> str:
    payload = {**body, "callbackUrl": callback_url} if callback_url else dict(body)
    kind = JobKind.makeCall if "url" in body else JobKind.sendSms
    return client.submit(kind, payload).job_id


def webhook_settles(client: Client, job_id: str, timeout: float = 20) -> JobRecord:
    """The record once its latest webhook delivery is delivered or failed."""

    def settled() -> JobRecord | None:
        record = client.get(job_id)
        hook = record.webhook
        return record if hook and hook.status in ("delivered", "failed") else None

    record: JobRecord = wait_until(settled, timeout=timeout)
    return record


def test_receiver_gets_the_final_record_once_signed(
    client: Client,
    api: TestClient,
    worker: WorkerProcess,
    fake_twilio: FakeTwilio,
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver()
    job_id = send(client, hook.url())
    record = webhook_settles(client, job_id)
    assert record.status == "succeeded"
    assert record.webhook.status == "delivered"
    assert record.webhook.attempts == 1
    assert record.webhook.event == "job.succeeded"
    assert record.webhook.lastError is None

    time.sleep(0.5)  # room for a duplicate to show up, if there were one
    [delivery] = hook.received()
    assert delivery.event == "job.succeeded"
    assert delivery.headers["X-Twilio-Jobs-Job-Id"] == job_id
    assert delivery.headers["Content-Type"] == "application/json"
    sent = delivery.json()
    shown = api.get(f"/api/jobs/{job_id}").json()
    assert sent == {k: v for k, v in shown.items() if k != "webhook"}
    assert sent["result"]["callback"] == "success"
    assert sent["result"]["contextWrites"]["to"]["sid"] == sent["twilioSid"]
    assert "accountToken" not in delivery.body.decode() and DEFAULT_AUTH_TOKEN not in str(sent)

    # Standard Webhooks, checked by the spec's own package: the id is the delivery's, signed
    # with the current secret and, during the rotation, the previous one.
    assert delivery.headers["webhook-id"] == record.webhook.id
    assert delivery.headers["webhook-id"] == delivery.headers["X-Twilio-Jobs-Delivery"]
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60
    assert Webhook(WEBHOOK_SECRET).verify(delivery.body, delivery.headers) == sent
    assert Webhook(PREVIOUS_SECRET.encode()).verify(delivery.body, delivery.headers) == sent
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    with pytest.raises(WebhookVerificationError):
        Webhook(b"not-the-secret").verify(delivery.body, delivery.headers)
    replayed = {**delivery.headers, "webhook-id": f"{job_id}-e99"}
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(delivery.body, replayed)
    assert verify_webhook(delivery.body, delivery.headers, WEBHOOK_SECRET)
    assert verify_webhook(delivery.body, delivery.headers, PREVIOUS_SECRET)
    assert not verify_webhook(delivery.body, replayed, WEBHOOK_SECRET)

    # the earlier header, kept for receivers that check it
    signature = delivery.headers["X-Twilio-Jobs-Signature"]
    assert verify_webhook(delivery.body, signature, WEBHOOK_SECRET)
    assert verify_webhook(delivery.body, signature, PREVIOUS_SECRET)
    tampered = delivery.body.replace(b'"succeeded"', b'"failed"', 1)
    assert tampered != delivery.body
    assert not verify_webhook(tampered, signature, WEBHOOK_SECRET)
    assert not verify_webhook(delivery.body, signature, "not-the-secret")
    assert not verify_webhook(delivery.body, signature, WEBHOOK_SECRET, now=time.time() + 400)
    old = sign_webhook(delivery.body, WEBHOOK_SECRET, int(time.time()) - 301)
    assert not verify_webhook(delivery.body, old, WEBHOOK_SECRET)
    assert fake_twilio.created_count == 1


def test_failing_receiver_is_retried_and_never_resends_the_message(
    client: Client,
    worker: WorkerProcess,
    fake_twilio: FakeTwilio,
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver([500, 500])
    job_id = send(client, hook.url())
    record = webhook_settles(client, job_id)
    assert record.webhook.status == "delivered"
    assert record.webhook.attempts == 3
    assert record.status == "succeeded" and record.attempts == 1
    assert record.result["callback"] == "success"
    deliveries = hook.received()
    assert len(deliveries) == 3
    assert len({d.body for d in deliveries}) == 1
    assert all(d.headers["X-Twilio-Jobs-Delivery"] == record.webhook.id for d in deliveries)
    assert fake_twilio.create_attempts == 1 and fake_twilio.created_count == 1


def test_failed_job_gets_its_error_envelope(
    client: Client, worker: WorkerProcess, receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    job_id = send(client, hook.url(), {**SEED_SMS, "accountToken": "wrong"})
    record = webhook_settles(client, job_id)
    assert record.status == "failed"
    [delivery] = hook.received()
    assert delivery.event == "job.failed"
    assert delivery.json()["result"] == {
        "callback": "error",
        "contextWrites": {"to": "[HTTP 401] Unable to create record: Authenticate"},
    }


def test_private_address_is_refused_by_default_and_allowed_by_the_setting(
    env: dict[str, str],
    client: Client,
    api: TestClient,
    start_worker: Callable[..., WorkerProcess],
    fake_twilio: FakeTwilio,
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver()
    guarded = start_worker({**env, "TWILIO_JOBS_WEBHOOK_ALLOW_PRIVATE": "false"}, name="guarded")
    refused = send(client, hook.url("localhost"))
    record = webhook_settles(client, refused)
    assert record.status == "succeeded"  # the webhook never changes the job's outcome
    assert record.webhook.status == "failed"
    assert record.webhook.attempts == 1  # refused at once, not retried
    assert "loopback" in record.webhook.lastError
    assert hook.received() == []
    [listed] = api.get("/api/webhooks/failed").json()["deliveries"]
    assert listed["jobId"] == refused and "loopback" in listed["lastError"]
    guarded.stop()

    start_worker(env, name="allowed")
    allowed = send(client, hook.url("localhost"))
    assert webhook_settles(client, allowed).webhook.status == "delivered"
    [delivery] = hook.received()
    assert delivery.headers["X-Twilio-Jobs-Job-Id"] == allowed
    assert delivery.headers["Host"] == f"localhost:{hook.port}"  # sent to the checked IP
    assert fake_twilio.created_count == 2


def test_replay_of_an_exhausted_webhook(
    env: dict[str, str],
    client: Client,
    api: TestClient,
    start_worker: Callable[..., WorkerProcess],
    fake_twilio: FakeTwilio,
    receiver: Callable[..., Receiver],
) -> None:
    start_worker({**env, "TWILIO_JOBS_WEBHOOK_MAX_ATTEMPTS": "2"})
    hook = receiver([500, 503])
    job_id = send(client, hook.url())
    record = webhook_settles(client, job_id)
    assert record.webhook.status == "failed"
    assert record.webhook.attempts == 2
    assert record.webhook.lastError == "HTTP 503"
    assert record.status == "succeeded"
    [listed] = api.get("/api/webhooks/failed").json()["deliveries"]
    assert listed["jobId"] == job_id and listed["attempts"] == 2
    assert listed["event"] == "job.succeeded" and listed["url"] == hook.url()

    answer = api.post(f"/api/jobs/{job_id}/webhook")
    assert answer.status_code == 202
    assert answer.json()["webhook"]["status"] == "pending"
    record = webhook_settles(client, job_id)
    assert record.webhook.status == "delivered"
    assert record.webhook.attempts == 1
    assert api.get("/api/webhooks/failed").json() == {"deliveries": []}
    deliveries = hook.received()
    assert len(deliveries) == 3 and len({d.body for d in deliveries}) == 1
    assert verify_webhook(
        deliveries[-1].body, deliveries[-1].headers["X-Twilio-Jobs-Signature"], WEBHOOK_SECRET
    )
    assert fake_twilio.created_count == 1

    again = api.post(f"/api/jobs/{job_id}/webhook")
    assert again.status_code == 409 and again.json()["callback"] == "error"
    assert api.post("/api/jobs/nope/webhook").status_code == 404


def test_cancelled_job_goes_to_the_default_callback_url_unsigned(
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver()
    unsigned = {k: v for k, v in FAST_RETRIES.items() if k != "TWILIO_JOBS_WEBHOOK_SECRET"}
    env = service_env(fake_twilio.url, **unsigned, TWILIO_JOBS_DEFAULT_CALLBACK_URL=hook.url())
    proc = start_worker(env)
    jobs = Client(make_settings(env))
    try:
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        job_id = jobs.submit(JobKind.sendSms, {**SEED_SMS, "sendAt": later}).job_id
        assert jobs.cancel(job_id).status == "cancelled"
        record = webhook_settles(jobs, job_id)
    finally:
        jobs.close()
    assert record.webhook.status == "delivered"
    [delivery] = hook.received()
    assert delivery.event == "job.cancelled"
    assert delivery.json()["status"] == "cancelled"
    assert "X-Twilio-Jobs-Signature" not in delivery.headers
    assert "webhook-signature" not in delivery.headers
    assert delivery.headers["webhook-id"] == record.webhook.id
    assert "TWILIO_JOBS_WEBHOOK_SECRET is not set" in proc.log_text()
    assert fake_twilio.created_count == 0


def test_the_result_webhook_survives_a_worker_killed_right_after_the_final_write(
    env: dict[str, str],
    client: Client,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
    fake_twilio: FakeTwilio,
    receiver: Callable[..., Receiver],
    tmp_path: Path,
) -> None:
    """The worker process is SIGKILLed the moment the script that made the job final returns
    (tests/faults/sitecustomize.py): the event was written in that same script, so the
    supervisor's restarted worker delivers it, once."""
    hook = receiver()
    mark = tmp_path / "killed-after-final-write"
    faulty = start_worker(
        {
            **env,
            "PYTHONPATH": str(ROOT / "tests" / "faults"),
            "TWILIO_JOBS_TEST_FAULT": "kill-after-final",
            "TWILIO_JOBS_TEST_FAULT_MARK": str(mark),
        }
    )
    job_id = send(client, hook.url())
    wait_until(mark.exists)
    assert client.get(job_id).status == "succeeded"

    record = webhook_settles(client, job_id, timeout=60)
    assert record.webhook.status == "delivered"
    assert record.webhook.event == "job.succeeded"
    # nothing is left that could deliver it again
    wait_until(lambda: redis_conn.zcard(keys.WEBHOOK_SCHEDULE) == 0)
    [delivery] = hook.received()
    assert delivery.event == "job.succeeded"
    assert delivery.headers["webhook-id"] == record.webhook.id
    assert Webhook(WEBHOOK_SECRET).verify(delivery.body, delivery.headers)["status"] == "succeeded"
    assert "worker exited" in faulty.log_text()  # it was killed, and started again
    assert fake_twilio.created_count == 1


# -- Twilio status callbacks, sent by the fake Twilio to the API served on loopback


@dataclass
class PublicApi:
    url: str
    env: dict[str, str]
    client: Client


@pytest.fixture
def public_api(fake_twilio: FakeTwilio, redis_conn: redis.Redis) -> Iterator[PublicApi]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env(
        fake_twilio.url,
        **FAST_RETRIES,
        TWILIO_JOBS_PUBLIC_URL=url,
        TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
    )
    jobs = Client(make_settings(env))
    config = uvicorn.Config(
        create_app(jobs.settings, jobs), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10)
    yield PublicApi(url, env, jobs)
    server.should_exit = True
    thread.join(timeout=10)
    jobs.close()


def sid_of(client: Client, job_id: str) -> str:
    record = wait_until(lambda: (r := client.get(job_id)).twilioSid and r)
    return str(record.twilioSid)


def test_status_callbacks_update_delivery_status_never_backwards(
    public_api: PublicApi,
    start_worker: Callable[..., WorkerProcess],
    fake_twilio: FakeTwilio,
    receiver: Callable[..., Receiver],
) -> None:
    start_worker(public_api.env)
    jobs = public_api.client
    hook = receiver()
    in_order = send(jobs, hook.url())
    out_of_order = send(jobs, hook.url())
    sid = sid_of(jobs, in_order)
    other_sid = sid_of(jobs, out_of_order)
    assert fake_twilio._records[sid].status_callback.startswith(
        f"{public_api.url}/api/twilio/status/{in_order}?token="
    )

    assert fake_twilio.send_status_callbacks(sid, ["sent"]) == [204]
    assert wait_until(lambda: jobs.get(in_order).deliveryStatus == "sent")
    assert fake_twilio.send_status_callbacks(sid, ["delivered"]) == [204]
    assert fake_twilio.send_status_callbacks(other_sid, ["delivered", "sent"]) == [204, 204]

    def events(job_id: str) -> list[str]:
        return sorted(
            d.event for d in hook.received() if d.headers["X-Twilio-Jobs-Job-Id"] == job_id
        )

    wait_until(lambda: len(events(in_order)) == 3 and len(events(out_of_order)) == 2)
    for job_id in (in_order, out_of_order):
        record = webhook_settles(jobs, job_id)
        assert record.deliveryStatus == "delivered"
        assert record.status == "succeeded"
        assert record.errorCode is None
    assert events(in_order) == ["delivery.delivered", "delivery.sent", "job.succeeded"]
    assert events(out_of_order) == ["delivery.delivered", "job.succeeded"]
    last = [d for d in hook.received() if d.event == "delivery.delivered"][-1]
    assert last.json()["deliveryStatus"] == "delivered"
    assert verify_webhook(last.body, last.headers["X-Twilio-Jobs-Signature"], WEBHOOK_SECRET)

    # Forged callbacks: wrong auth token, unsigned, wrong URL token. Nothing changes.
    before = jobs.redis.hgetall(f"tj:job:{in_order}")
    seen = len(hook.received())
    assert fake_twilio.send_status_callbacks(sid, ["failed"], account_token="forged") == [403]
    assert fake_twilio.send_status_callbacks(sid, ["undelivered"], sign=False) == [403]
    forged_url = f"{public_api.url}/api/twilio/status/{in_order}?token={'0' * 64}"
    params = {"AccountSid": DEFAULT_ACCOUNT_SID, "MessageSid": sid, "MessageStatus": "failed"}
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(forged_url, params)
    answer = httpx.post(forged_url, data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 403
    assert answer.json() == {
        "callback": "error",
        "contextWrites": {"to": "Invalid status callback token"},
    }
    time.sleep(0.3)
    assert jobs.redis.hgetall(f"tj:job:{in_order}") == before
    assert len(hook.received()) == seen
    assert fake_twilio.created_count == 2


def test_undelivered_keeps_the_error_code_and_calls_follow_call_status(
    public_api: PublicApi,
    start_worker: Callable[..., WorkerProcess],
    fake_twilio: FakeTwilio,
) -> None:
    start_worker(public_api.env)
    jobs = public_api.client
    message = send(jobs, None)
    assert fake_twilio.send_status_callbacks(sid_of(jobs, message), ["sent", "undelivered"]) == [
        204,
        204,
    ]
    record = jobs.get(message)
    assert record.deliveryStatus == "undelivered" and record.errorCode == 30003

    fake_twilio.set_auto_callbacks(["initiated", "ringing", "in-progress", "completed"])
    call = send(jobs, None, SEED_CALL)
    wait_until(lambda: jobs.get(call).deliveryStatus == "completed")
    record = jobs.get(call)
    assert record.errorCode is None
    assert record.status == "succeeded"


def test_status_callback_for_an_unknown_job_or_without_token(
    public_api: PublicApi,
) -> None:
    from twilio_jobs.status_callbacks import callback_token

    token = callback_token(public_api.client.cipher, "nojob")
    answer = httpx.post(
        f"{public_api.url}/api/twilio/status/nojob?token={token}", data={"MessageStatus": "sent"}
    )
    assert answer.status_code == 404
    answer = httpx.post(f"{public_api.url}/api/twilio/status/nojob", data={})
    assert answer.status_code == 403
