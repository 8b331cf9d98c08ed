"""Rotating TWILIO_JOBS_SECRET_KEY for real: jobs accepted under the old key are sent by a
worker that has the new key and the old one as TWILIO_JOBS_SECRET_KEY_PREVIOUS, and what is
encrypted from then on is under the new key."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from tests.conftest import SEED_SMS, WorkerProcess, make_settings
from tests.fake_twilio import DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs import keys
from twilio_jobs.client import Client
from twilio_jobs.crypto import Cipher
from twilio_jobs.schemas import JobKind

pytestmark = pytest.mark.integration

OLD_KEY = "old-secret-key-0123456789-abcdefghijklmnop"
NEW_KEY = "new-secret-key-0123456789-abcdefghijklmnop"


def test_jobs_accepted_under_the_old_key_are_sent_after_a_rotation(
    env: dict[str, str],
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
    fake_twilio: FakeTwilio,
) -> None:
    before = Client(make_settings({**env, "TWILIO_JOBS_SECRET_KEY": OLD_KEY}))
    rotated_env = {
        **env,
        "TWILIO_JOBS_SECRET_KEY": NEW_KEY,
        "TWILIO_JOBS_SECRET_KEY_PREVIOUS": OLD_KEY,
    }
    after = Client(make_settings(rotated_env))
    try:
        old_job = before.submit(JobKind.sendSms, SEED_SMS).job_id
        new_job = after.submit(JobKind.sendSms, {**SEED_SMS, "body": "after"}).job_id
        new_cred = str(redis_conn.hget(keys.job(new_job), "cred"))
        assert Cipher(NEW_KEY).decrypt(new_cred) == DEFAULT_AUTH_TOKEN  # the new key encrypts
        with pytest.raises(ValueError):
            Cipher(OLD_KEY).decrypt(new_cred)

        start_worker(rotated_env)
        for job_id in (old_job, new_job):
            record = after.wait(job_id, timeout=20)
            assert record.status == "succeeded", record
        assert fake_twilio.created_count == 2
    finally:
        before.close()
        after.close()
