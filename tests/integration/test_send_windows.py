"""Quiet hours end to end: HTTP API -> Redis -> a default `twilio-jobs worker` -> fake Twilio.

The clock is the real one; the windows are chosen relative to it: a window whose start is a
few seconds from now in New York opens three hours later in Los Angeles (the same wall time
there), so the east-coast recipients are sent at their window's start and the west-coast ones
wait in the schedule, due three hours later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import SEED_SMS, WorkerProcess, make_settings, service_env, wait_until
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs import keys
from twilio_jobs.client import Client

pytestmark = pytest.mark.integration

SENDER = "+15005550006"
EAST = [f"+1212555{100 + i:04d}" for i in range(3)]
WEST = [f"+1415555{100 + i:04d}" for i in range(3)]
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def api(fake_twilio: FakeTwilio, redis_conn: redis.Redis) -> Iterator[TestClient]:
    jobs = Client(make_settings(service_env(fake_twilio.url)))
    with TestClient(create_app(jobs.settings, jobs)) as http:
        yield http
    jobs.close()


def window_from_now(
    seconds: float, length: timedelta = timedelta(hours=1)
) -> tuple[dict[str, Any], float]:
    """A window opening `seconds` from now in New York (wall time, to the second), and the
    instant (unix) it opens there."""
    opens = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    local = opens.astimezone(NEW_YORK)
    window = {
        "start": local.strftime("%H:%M:%S"),
        "end": (local + length).strftime("%H:%M:%S"),
        "timezone": "recipient",
    }
    return window, opens.timestamp()


def campaign(recipients: list[str], window: dict[str, Any]) -> dict[str, Any]:
    return {
        "accountSid": DEFAULT_ACCOUNT_SID,
        "accountToken": DEFAULT_AUTH_TOKEN,
        "from": SENDER,
        "body": "Hi",
        "sendWindow": window,
        "recipients": [{"to": to} for to in recipients],
    }


def job_ids(conn: redis.Redis, campaign_id: str) -> dict[str, str]:
    """to -> job id."""
    ids = [str(i) for i in conn.lrange(keys.campaign_jobs(campaign_id), 0, -1)]
    return {json.loads(str(conn.hget(keys.job(i), "params")))["To"]: i for i in ids}


def test_east_coast_sent_at_window_start_west_coast_waits_three_hours(
    api: TestClient,
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    start_worker(service_env(fake_twilio.url), name="w1")
    window, opens = window_from_now(5)
    body = campaign(EAST + WEST, window)

    dry = api.post("/api/campaigns", params={"dryRun": "true"}, json=body)
    assert dry.status_code == 200, dry.text
    estimate = dry.json()
    assert estimate["accepted"] == 6 and estimate["deferred"] == 6
    # The last recipients (west coast) start three hours after the window opens in the east.
    assert 3 * 3600 < estimate["etaSeconds"] < 3 * 3600 + 60

    answer = api.post("/api/campaigns", json=body)
    assert answer.status_code == 202, answer.text
    campaign_id = answer.json()["campaignId"]
    ids = job_ids(redis_conn, campaign_id)
    for to in EAST + WEST:
        assert redis_conn.hget(keys.job(ids[to]), "status") == "scheduled"
    # Waiting in the schedule, due when each recipient's window opens.
    for to in EAST:
        assert redis_conn.zscore(keys.SCHEDULE, ids[to]) == pytest.approx(opens)
    for to in WEST:
        assert redis_conn.zscore(keys.SCHEDULE, ids[to]) == pytest.approx(opens + 3 * 3600)

    # The east coast is sent once its window opens, not before.
    assert not fake_twilio.messages or time.time() >= opens
    wait_until(lambda: len(fake_twilio.messages) == 3, timeout=30)
    sent_to = sorted(m["to"] for m in fake_twilio.messages)
    assert sent_to == EAST
    # The fake has the messages before the worker has their answers: wait for the outcomes.
    wait_until(
        lambda: all(redis_conn.hget(keys.job(ids[to]), "status") != "running" for to in EAST),
        timeout=10,
    )
    for to in EAST:
        record = redis_conn.hgetall(keys.job(ids[to]))
        assert record["status"] == "succeeded"
        assert opens <= float(record["submittedAt"]) < opens + 10
    # The west coast still waits, in the schedule, not in a worker.
    for to in WEST:
        assert redis_conn.hget(keys.job(ids[to]), "status") == "scheduled"
        assert redis_conn.zscore(keys.SCHEDULE, ids[to]) == pytest.approx(opens + 3 * 3600)
    status = api.get(f"/api/campaigns/{campaign_id}").json()
    assert status["counts"]["scheduled"] == 3 and status["counts"]["succeeded"] == 3

    # Cancelling still reaches the jobs waiting for their window.
    cancelled = api.post(f"/api/campaigns/{campaign_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    wait_until(
        lambda: all(redis_conn.hget(keys.job(ids[to]), "status") == "cancelled" for to in WEST)
    )
    assert len(fake_twilio.messages) == 3


def test_a_job_released_outside_its_window_goes_back_to_wait_for_it(
    api: TestClient,
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """The worker checks the window when it claims a job: one handed to it early (as a job
    paced past its window's end would be) is put back in the schedule until the window opens,
    and nothing is sent."""
    window, opens = window_from_now(3600)
    answer = api.post("/api/twilio/sendSms", json={**SEED_SMS, "to": EAST[0], "sendWindow": window})
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "scheduled"
    job_id = answer.json()["jobId"]
    assert redis_conn.zscore(keys.SCHEDULE, job_id) == pytest.approx(opens)

    start_worker(service_env(fake_twilio.url), name="w1")
    redis_conn.zadd(keys.SCHEDULE, {job_id: time.time()})  # released early
    wait_until(lambda: redis_conn.zscore(keys.SCHEDULE, job_id) == pytest.approx(opens))
    record = redis_conn.hgetall(keys.job(job_id))
    assert record["status"] == "scheduled" and record.get("attempts", "0") == "0"
    assert fake_twilio.create_attempts == 0

    # Cancelling a job that waits for its window ends it.
    cancelled = api.delete(f"/api/jobs/{job_id}")
    assert cancelled.status_code in (200, 202), cancelled.text
    assert api.get(f"/api/jobs/{job_id}").json()["status"] == "cancelled"


def test_inside_its_window_a_job_is_sent_now(
    api: TestClient, fake_twilio: FakeTwilio, start_worker: Callable[..., WorkerProcess]
) -> None:
    window = {"start": "00:00", "end": "23:59:59", "timezone": "UTC"}
    answer = api.post("/api/twilio/sendSms", json={**SEED_SMS, "sendWindow": window})
    assert answer.status_code == 202 and answer.json()["status"] == "queued", answer.text
    start_worker(service_env(fake_twilio.url), name="w1")
    wait_until(lambda: len(fake_twilio.messages) == 1)


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"start": "25:00", "end": "21:00"}, "sendWindow.start"),
        ({"start": "08:00", "end": "21:00", "timezone": "Mars/Olympus"}, "sendWindow.timezone"),
        ({"start": "08:00", "end": "21:00", "days": []}, "sendWindow.days"),
        ({"start": "08:00", "end": "21:00", "days": ["someday"]}, "sendWindow.days"),
    ],
)
def test_a_malformed_window_is_a_400_naming_the_field(
    api: TestClient, window: dict[str, Any], field: str
) -> None:
    single = api.post("/api/twilio/sendSms", json={**SEED_SMS, "sendWindow": window})
    assert single.status_code == 400
    assert single.json()["contextWrites"]["to"].startswith(f"Invalid field '{field}'"), single.text
    bulk = api.post("/api/campaigns", json=campaign(EAST, window))
    assert bulk.status_code == 400
    assert bulk.json()["contextWrites"]["to"].startswith(f"Invalid field '{field}'"), bulk.text


def test_the_server_default_window_applies_to_sends_without_their_own(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis
) -> None:
    window, opens = window_from_now(3600)
    env = service_env(fake_twilio.url, TWILIO_JOBS_DEFAULT_SEND_WINDOW=json.dumps(window))
    jobs = Client(make_settings(env))
    try:
        deferred = jobs.send_sms(**{**_snake(SEED_SMS), "to": EAST[0]})
        assert deferred.status == "scheduled"
        assert redis_conn.zscore(keys.SCHEDULE, deferred.jobId) == pytest.approx(opens)
        assert json.loads(str(redis_conn.hget(keys.job(deferred.jobId), "window")))["zones"] == [
            "America/New_York"
        ]
        # A window of its own wins over the default.
        always = {"start": "00:00", "end": "23:59:59", "timezone": "UTC"}
        own = jobs.send_sms(**{**_snake(SEED_SMS), "to": EAST[0], "send_window": always})
        assert own.status == "queued"
        # Verifications are not held by the default window.
        verify = jobs.start_verification(
            service_sid="VA" + "0" * 32, to=EAST[0], account_sid=DEFAULT_ACCOUNT_SID,
            account_token=DEFAULT_AUTH_TOKEN,
        )  # fmt: skip
        assert verify.status == "queued"
    finally:
        jobs.close()


def _snake(body: dict[str, Any]) -> dict[str, Any]:
    names = {"accountSid": "account_sid", "accountToken": "account_token", "from": "from_"}
    return {names.get(k, k): v for k, v in body.items()}
