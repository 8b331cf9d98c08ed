"""The send POSTs answered by `FastSends` (before the router) are answered as the routes answer
them: the same status, headers and bytes for valid and invalid bodies, idempotency keys, tenant
keys and a store that is down; and the same jobs written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producer.api import create_app
from producer.routes import sends
from producer.routes.sends import SEND_PATHS, FastSends
from tests.conftest import SEED_CALL, SEED_MMS, SEED_SMS, make_settings, service_env
from tests.fake_twilio import FakeTwilio
from twilio_jobs import keys
from twilio_jobs.client import Client
from twilio_jobs.schemas import JobKind
from twilio_jobs.settings import Settings

SMS = "/api/twilio/sendSms"
VERIFY = {
    "accountSid": SEED_SMS["accountSid"],
    "accountToken": SEED_SMS["accountToken"],
    "serviceSid": "VA" + "0" * 32,
    "to": SEED_SMS["to"],
    "channel": "sms",
}
NO_TOKEN = {k: v for k, v in SEED_SMS.items() if k != "accountToken"}

# (path, body as bytes or a JSON value, extra headers)
CASES: list[tuple[str, Any, dict[str, str]]] = [
    (SMS, SEED_SMS, {}),
    ("/api/twilio/sendMms", SEED_MMS, {}),
    ("/api/twilio/makeCall", SEED_CALL, {}),
    ("/api/twilio/startVerification", VERIFY, {}),
    (SMS, {**SEED_SMS, "callbackUrl": "https://example.com/hook"}, {}),
    (SMS, b"", {}),
    (SMS, b"   \n", {}),
    (SMS, b"{not json", {}),
    (SMS, b"[1, 2]", {}),
    (SMS, b'"text"', {}),
    (SMS, json.dumps(SEED_SMS).encode(), {"Content-Type": "text/plain"}),
    (SMS, json.dumps(SEED_SMS).encode(), {"Content-Type": "application/problem+json"}),
    (SMS, {**SEED_SMS, "color": "red"}, {}),
    (SMS, {k: v for k, v in SEED_SMS.items() if k != "to"}, {}),
    (SMS, {**SEED_SMS, "to": "not a number"}, {}),
    (SMS, {**SEED_SMS, "body": ""}, {}),
    (SMS, {**SEED_SMS, "sendAt": "yesterday"}, {}),
    (SMS, {**SEED_SMS, "sendAt": "2001-01-01T00:00:00Z"}, {}),
    (SMS, {**SEED_SMS, "sendWindow": {"start": "25:00", "end": "21:00"}}, {}),
    (SMS, NO_TOKEN, {}),
    ("/api/twilio/makeCall", {k: v for k, v in SEED_CALL.items() if k != "url"}, {}),
    (SMS, SEED_SMS, {"Idempotency-Key": "k" * 256}),
    (SMS, {**SEED_SMS, "idempotencyKey": "k" * 256}, {}),
    (SMS, b"x" * 300_000, {}),
]


def routed(app: FastAPI) -> FastAPI:
    """`app` without `FastSends`: every request goes through the router."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FastSends]
    return app


class Counted(TestClient):
    """A TestClient that checks which way in answered each send POST."""

    fast = True

    def post(self, url: Any, *args: Any, **kwargs: Any) -> Any:
        before = len(ROUTED)
        response = super().post(url, *args, **kwargs)
        if str(url) in SEND_PATHS and response.status_code != 413:  # 413: the size limit's
            assert (len(ROUTED) == before) is self.fast, (url, self.fast)
        return response


ROUTED: list[str] = []


@contextmanager
def both(settings: Settings, client: Client) -> Iterator[tuple[TestClient, TestClient]]:
    fast_app = create_app(settings, client)
    assert any(m.cls is FastSends for m in fast_app.user_middleware)
    slow_app = routed(create_app(settings, client))
    with (
        Counted(fast_app, raise_server_exceptions=False) as fast,
        Counted(slow_app, raise_server_exceptions=False) as slow,
    ):
        slow.fast = False
        yield fast, slow


@pytest.fixture(autouse=True)
def count_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    original = sends.submit

    async def counting(request: Any, kind: Any) -> Any:
        ROUTED.append(request.url.path)
        return await original(request, kind)

    monkeypatch.setattr(sends, "submit", counting)


def post(http: TestClient, path: str, body: Any, headers: dict[str, str], rid: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post(path, content=content, headers={"X-Request-Id": rid, **headers})


def shown(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body, with a new job's id (random) written as JOB."""
    body = response.content
    if response.status_code == 202:
        job_id = response.json()["jobId"]
        assert len(job_id) == 32 and int(job_id, 16) >= 0
        body = body.replace(job_id.encode(), b"JOB")
    return response.status_code, list(response.headers.multi_items()), body


def test_fast_and_routed_answers_are_identical(
    settings: Settings, client: Client, redis_conn: redis.Redis
) -> None:
    with both(settings, client) as (fast, slow):
        for i, (path, body, headers) in enumerate(CASES):
            a = post(fast, path, body, headers, f"case-{i}")
            b = post(slow, path, body, headers, f"case-{i}")
            assert shown(a) == shown(b), (path, body, headers)
        # Other methods and paths go on to the router either way.
        assert fast.get(SMS).status_code == slow.get(SMS).status_code == 405
        a = fast.post(SMS + "/", json=SEED_SMS, follow_redirects=False)
        b = slow.post(SMS + "/", json=SEED_SMS, follow_redirects=False)
        assert a.status_code == b.status_code and a.content == b.content
        # Valid requests were queued whole, the same way: the records have the same fields.
        ids = []
        for http in (fast, slow):
            answer = post(http, SMS, SEED_SMS, {}, "same-request")
            assert answer.status_code == 202
            ids.append(answer.json()["jobId"])
        records = [redis_conn.hgetall(keys.job(job_id)) for job_id in ids]
        assert set(records[0]) == set(records[1])
        skip = {"createdAt", "updatedAt", "cred"}
        assert {k: v for k, v in records[0].items() if k not in skip} == {
            k: v for k, v in records[1].items() if k not in skip
        }
        assert records[0]["requestId"] == "same-request"


def test_idempotency_keys_are_shared_by_both_ways_in(
    settings: Settings, client: Client, redis_conn: redis.Redis
) -> None:
    with both(settings, client) as (fast, slow):
        first = post(fast, SMS, SEED_SMS, {"Idempotency-Key": "key-1"}, "r1")
        again = post(slow, SMS, SEED_SMS, {"Idempotency-Key": "key-1"}, "r1")
        assert first.status_code == 202 and again.status_code == 200
        assert first.json()["jobId"] == again.json()["jobId"]
        assert (
            again.content == post(fast, SMS, SEED_SMS, {"Idempotency-Key": "key-1"}, "r1").content
        )
        other = {**SEED_SMS, "body": "different"}
        a = post(fast, SMS, other, {"Idempotency-Key": "key-1"}, "r2")
        b = post(slow, SMS, other, {"Idempotency-Key": "key-1"}, "r2")
        assert a.status_code == 409 and shown(a) == shown(b)
        in_body = {**SEED_SMS, "idempotencyKey": "key-2"}
        a = post(slow, SMS, in_body, {}, "r3")
        b = post(fast, SMS, in_body, {}, "r3")
        assert (a.status_code, b.status_code) == (202, 200)
        assert shown(b) == shown(post(slow, SMS, in_body, {}, "r3"))


def test_tenant_keys_are_checked_the_same_way(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis
) -> None:
    settings = make_settings(service_env(fake_twilio.url, TWILIO_JOBS_API_KEYS="acme:key-acme"))
    client = Client(settings)
    try:
        with both(settings, client) as (fast, slow):
            for auth in (None, "Bearer wrong", "Basic key-acme", "Bearer", "bearer key-acme"):
                headers = {"Authorization": auth} if auth else {}
                for body in (SEED_SMS, b"", b"{bad"):
                    a = post(fast, SMS, body, headers, "t")
                    b = post(slow, SMS, body, headers, "t")
                    assert shown(a) == shown(b), (auth, body)
            accepted = post(fast, SMS, SEED_SMS, {"Authorization": "Bearer key-acme"}, "t")
            assert accepted.status_code == 202
            record = redis_conn.hgetall(keys.job(accepted.json()["jobId"]))
            assert record["owner"] == "acme"
    finally:
        client.close()


def test_a_store_that_is_down_is_answered_the_same_way(fake_twilio: FakeTwilio) -> None:
    settings = make_settings(service_env(fake_twilio.url, redis_url="redis://127.0.0.1:1/0"))
    client = Client(settings)
    try:
        with both(settings, client) as (fast, slow):
            for headers in ({}, {"Idempotency-Key": "k"}):
                a = post(fast, SMS, SEED_SMS, headers, "down")
                b = post(slow, SMS, SEED_SMS, headers, "down")
                assert a.status_code == 503 and shown(a) == shown(b)
    finally:
        client.close()


def snapshot(conn: redis.Redis, job_id: str) -> dict[str, Any]:
    """Every key, its type and content, with the job id written as JOB and times left out."""
    found: dict[str, Any] = {}
    for key in conn.keys("*"):
        kind = conn.type(key)
        name = key.replace(job_id, "JOB")
        if kind == "hash":
            value: Any = {
                k: v.replace(job_id, "JOB")
                for k, v in conn.hgetall(key).items()
                if k not in ("createdAt", "updatedAt", "cred")
            }
        elif kind == "zset":
            value = sorted(m.replace(job_id, "JOB") for m in conn.zrange(key, 0, -1))
        elif kind == "list":
            value = conn.llen(key)
        else:
            value = conn.get(key)
        found[name] = (kind, value, conn.ttl(key) > 0)
    return found


def test_the_async_writer_writes_what_submit_writes(
    client: Client, redis_conn: redis.Redis
) -> None:
    job_id = client.submit(JobKind.sendSms, SEED_SMS).job_id
    by_submit = snapshot(redis_conn, job_id)
    redis_conn.flushdb()
    job_id = asyncio.run(client.asubmit(JobKind.sendSms, SEED_SMS)).job_id
    assert snapshot(redis_conn, job_id) == by_submit
    assert len(by_submit) >= 5  # record, schedule, queue, stats, indexes
