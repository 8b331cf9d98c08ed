"""Ambiguous outcomes against Twilio's real list semantics: nothing is sent twice.

The fake keeps every message queued (`date_sent` null, so out of every `DateSent`-filtered
list) for longer than the worker's default reconciliation delay, as Twilio does behind a
sender's MPS. Each send path meets a create that happened but was answered with a 500, or not
answered before the read timeout; the worker must find that queued message and adopt it.
The reconciliation delay is the default one (what users get).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

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
    statuses,
    wait_quiet,
    wait_until,
)
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, UNSENT, FakeTwilio
from twilio_jobs.client import Client

pytestmark = pytest.mark.integration

SERVICE = "MG" + "5" * 32
SENDER = "+15005550006"
READ_TIMEOUT = 2.0  # conftest's; the fault below answers later than that


def user_env(fake: FakeTwilio, **extra: str) -> dict[str, str]:
    """The suite's environment with the reconciliation timing left at its defaults."""
    env = service_env(fake.url, TWILIO_JOBS_SENDER_RATES=f'{{"{SENDER}": 0, "{SERVICE}": 0}}')
    env.pop("TWILIO_JOBS_RECONCILE_DELAY")
    env["TWILIO_JOBS_READ_TIMEOUT"] = str(READ_TIMEOUT)
    env.update(extra)
    return env


def inject(fake: FakeTwilio, mode: str, to: str) -> None:
    """Twilio creates the resource, then the answer is lost."""
    if mode == "500-after-create":
        fake.add_fault(500, match_to=to, create_anyway=True)
    else:  # the create happens, the answer comes after the worker stopped waiting
        fake.add_fault(500, match_to=to, create_anyway=True, delay=READ_TIMEOUT + 2)


MODES = ["500-after-create", "read-timeout-after-create"]
SINGLE = {
    "sms": ("sendSms", SEED_SMS, "Messages"),
    "messaging-service": (
        "sendSms",
        {**{k: v for k, v in SEED_SMS.items() if k != "from"}, "messagingServiceSid": SERVICE},
        "Messages",
    ),
    "mms": ("sendMms", SEED_MMS, "Messages"),
    "call": ("makeCall", SEED_CALL, "Calls"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", list(SINGLE))
def test_single_send_is_created_once(
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
    path: str,
    mode: str,
) -> None:
    route, body, resource = SINGLE[path]
    env = user_env(fake_twilio)
    start_worker(env)
    jobs = Client(make_settings(env))
    inject(fake_twilio, mode, body["to"])
    with TestClient(create_app(jobs.settings, jobs)) as api:
        answer = api.post(f"/api/twilio/{route}", json=body)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["jobId"]
        record = api.get(f"/api/jobs/{job_id}", params={"wait": 30}).json()
    wait_quiet(redis_conn, fake_twilio)

    created = fake_twilio.messages if resource == "Messages" else fake_twilio.calls
    assert len(created) == 1, f"{path}/{mode}: created {len(created)} times"
    assert fake_twilio.create_attempts == 1  # reconciled, never sent again
    assert record["status"] == "succeeded" and record["twilioSid"] == created[0]["sid"]
    adopted = record["result"]["contextWrites"]["to"]
    assert adopted["sid"] == created[0]["sid"]
    if resource == "Messages":
        # Found while Twilio still held it: no sent date yet.
        assert adopted["status"] in UNSENT and adopted["date_sent"] is None
    if path == "messaging-service":
        assert adopted["status"] == "accepted" and adopted["from"] is None
    jobs.close()


@pytest.mark.parametrize("mode", MODES)
def test_campaign_batch_recipients_are_created_once(
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
    mode: str,
) -> None:
    env = user_env(fake_twilio)
    jobs = Client(make_settings(env))
    recipients = [{"to": f"+1415555{i:04d}", "n": i} for i in range(30)]
    unlucky = [r["to"] for r in recipients[::10]]
    for to in unlucky:
        inject(fake_twilio, mode, to)
    answer = jobs.create_campaign(
        account_sid=DEFAULT_ACCOUNT_SID,
        account_token=DEFAULT_AUTH_TOKEN,
        from_=SENDER,
        body="Hello {{n}}",
        recipients=recipients,
    )
    campaign_id = str(answer.campaignId)
    start_worker(env)

    def finished() -> bool:
        counts = jobs.campaign_status(campaign_id).counts
        return bool(counts.get("succeeded", 0) + counts.get("failed", 0) == len(recipients))

    wait_until(finished, timeout=60, interval=0.2)
    wait_quiet(redis_conn, fake_twilio)
    per_number = collections.Counter(m["to"] for m in fake_twilio.messages)
    assert per_number == {r["to"]: 1 for r in recipients}
    assert fake_twilio.create_attempts == len(recipients)
    status = jobs.campaign_status(campaign_id)
    assert status.counts["succeeded"] == len(recipients)
    adopted = [m for m in fake_twilio.messages if m["to"] in unlucky]
    assert len(adopted) == len(unlucky)
    jobs.close()


def test_throttling_never_fails_a_job_while_the_account_is_busy(
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Twilio answers 429 whenever more than 10 requests of the account are in flight;
    2,000 jobs with default settings (25 in flight, 8 attempts): none fails, and the in-flight
    limit the workers keep settles at or below 10."""
    total = 2000
    env = service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES=f'{{"{SENDER}": 0}}')
    fake_twilio.set_latency(0.05)
    fake_twilio.set_concurrency_limit(10)
    jobs = Client(make_settings(env))
    job_ids = [
        jobs.send_sms(
            account_sid=DEFAULT_ACCOUNT_SID,
            account_token=DEFAULT_AUTH_TOKEN,
            from_=SENDER,
            to=f"+1415556{i:04d}",
            body=f"hi {i}",
        ).jobId
        for i in range(total)
    ]
    start_worker(env, concurrency=None)
    limits: list[float] = []

    def done() -> bool:
        aimd = redis_conn.hgetall(f"tj:pace:aimd:{DEFAULT_ACCOUNT_SID}")
        if aimd:  # the limit now: as last cut, grown back at the default 1 per second since
            grown = float(aimd["limit"]) + (time.time() - float(aimd["at"]))
            limits.append(min(25.0, grown))
        counts = statuses(redis_conn, job_ids)
        return counts["succeeded"] + counts["failed"] == total

    wait_until(done, timeout=240, interval=0.25)
    wait_quiet(redis_conn, fake_twilio)
    counts = statuses(redis_conn, job_ids)
    later = limits[len(limits) // 2 :]
    settled = sorted(later)[len(later) // 2] if later else None
    print(
        f"\nthrottling: jobs={total} statuses={dict(counts)} 429s={fake_twilio.throttled_total} "
        f"creates={fake_twilio.created_count} peak={fake_twilio.peak_in_flight} "
        f"limit(median of the 2nd half)={settled} min={min(limits, default=None)}"
    )
    assert counts["succeeded"] == total and counts["failed"] == 0
    assert fake_twilio.created_count == total
    assert fake_twilio.throttled_total > 0  # the limit was hit: this test means something
    assert settled is not None and settled <= 10
    assert max(fake_twilio.peak_in_flight.values()) <= 10
    jobs.close()


def test_quiescence_sees_scheduled_work(
    client: Client, redis_conn: redis.Redis, fake_twilio: FakeTwilio
) -> None:
    """`wait_quiet` is what the duplicate checks rely on: it must not pass while work waits."""
    from datetime import UTC, datetime, timedelta

    when = datetime.now(UTC) + timedelta(seconds=30)
    client.send_sms(
        account_sid=DEFAULT_ACCOUNT_SID,
        account_token=DEFAULT_AUTH_TOKEN,
        from_=SENDER,
        to="+14155550100",
        body="later",
        send_at=when.isoformat(),
    )
    with pytest.raises(AssertionError):
        wait_quiet(redis_conn, fake_twilio, timeout=0.5)
