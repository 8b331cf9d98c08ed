"""The enqueue fast paths: concurrent async submits are written together, each job whole."""

from __future__ import annotations

import asyncio
import base64
import json

import redis

from tests.conftest import SEED_SMS
from twilio_jobs import keys
from twilio_jobs.client import Client
from twilio_jobs.crypto import Cipher
from twilio_jobs.schemas import JobKind
from twilio_jobs.writer import JobWriter


def queued_job_ids(redis_conn: redis.Redis, queue: str = "twilio_jobs") -> list[str]:
    messages = [json.loads(m) for m in redis_conn.lrange(queue, 0, -1)]
    return [json.loads(base64.b64decode(m["body"]))[0][0] for m in reversed(messages)]


def test_concurrent_async_submits_share_round_trips(
    client: Client, redis_conn: redis.Redis, monkeypatch: object
) -> None:
    flushes = []
    original = JobWriter._flush

    async def counting(self: JobWriter) -> None:
        flushes.append(len(self._pending))
        await original(self)

    monkeypatch.setattr(JobWriter, "_flush", counting)  # type: ignore[attr-defined]

    async def burst() -> list[str]:
        subs = await asyncio.gather(*(client.asubmit(JobKind.sendSms, SEED_SMS) for _ in range(50)))
        return [s.job_id for s in subs]

    job_ids = asyncio.run(burst())
    assert len(set(job_ids)) == 50
    assert len(flushes) < 50  # coalesced
    assert sorted(queued_job_ids(redis_conn)) == sorted(job_ids)
    for job_id in job_ids:
        record = redis_conn.hgetall(keys.job(job_id))
        assert record["status"] == "queued" and record["cred"]
        assert 0 < redis_conn.ttl(keys.job(job_id)) <= client.settings.result_ttl
        assert client.cipher.decrypt(record["cred"]) == SEED_SMS["accountToken"]


def test_async_submit_with_idempotency_key_takes_the_full_path(
    client: Client, redis_conn: redis.Redis
) -> None:
    async def twice() -> tuple[str, str]:
        a = await client.asubmit(JobKind.sendSms, SEED_SMS, idempotency_key="k1")
        b = await client.asubmit(JobKind.sendSms, SEED_SMS, idempotency_key="k1")
        return a.job_id, b.job_id

    first, second = asyncio.run(twice())
    assert first == second
    assert queued_job_ids(redis_conn) == [first]


def test_sync_submit_queues_in_the_same_transaction(
    client: Client, redis_conn: redis.Redis
) -> None:
    job_id = client.submit(JobKind.sendSms, SEED_SMS).job_id
    assert queued_job_ids(redis_conn) == [job_id]


def test_cipher_reuses_recent_ciphertext_and_remembers_decryptions() -> None:
    cipher = Cipher("k" * 40)
    a, b = cipher.encrypt_recent("token"), cipher.encrypt_recent("token")
    assert a == b != cipher.encrypt_recent("other")
    assert cipher.encrypt("token") != a  # plain encrypt is never reused
    assert cipher.decrypt(a) == cipher.decrypt(a) == "token"
    assert Cipher("j" * 40).encrypt_recent("token") != a


def test_send_route_reads_the_body_as_fastapi_would(
    client: Client, redis_conn: redis.Redis
) -> None:
    from fastapi.testclient import TestClient

    from producer.api import create_app

    with TestClient(create_app(client.settings, client)) as http:
        as_text = http.post(
            "/api/twilio/sendSms",
            content=json.dumps(SEED_SMS),
            headers={"Content-Type": "text/plain"},
        )
        assert as_text.status_code == 400
        assert as_text.json()["contextWrites"]["to"] == "Request body must be a JSON object"
        untyped = http.post("/api/twilio/sendSms", content=json.dumps(SEED_SMS))
        assert untyped.status_code == 202
        long_key = http.post(
            "/api/twilio/sendSms", json=SEED_SMS, headers={"Idempotency-Key": "k" * 256}
        )
        assert long_key.status_code == 400
        operation = http.get("/openapi.json").json()["paths"]["/api/twilio/makeCall"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert {"url", "twiml", "from", "to"} <= set(schema["properties"])
        assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
    assert len(queued_job_ids(redis_conn)) == 1
