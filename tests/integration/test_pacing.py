"""Global pacing across worker processes, observed by the fake Twilio."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import pytest
import redis

from tests.conftest import WorkerProcess, make_settings, service_env, wait_until
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs.client import Client
from twilio_jobs.schemas import CampaignStatus

pytestmark = pytest.mark.integration

SENDER = "+15005550006"
OTHER = "+15005550009"


def number(i: int) -> str:
    return f"+1415{7100000 + i:07d}"


def campaign(jobs: Client, count: int, sender: str = SENDER) -> str:
    answer = jobs.create_campaign(
        account_sid=DEFAULT_ACCOUNT_SID,
        account_token=DEFAULT_AUTH_TOKEN,
        from_=sender,
        body="Hello {{n}}",
        recipients=[{"to": number(i), "n": i} for i in range(count)],
    )
    return str(answer.campaignId)


def done(jobs: Client, campaign_id: str) -> Callable[[], CampaignStatus | None]:
    def check() -> CampaignStatus | None:
        status = jobs.campaign_status(campaign_id)
        return status if status.state == "completed" else None

    return check


def test_rate_per_sender_and_in_flight_per_account_across_two_workers(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Callable[..., WorkerProcess]
) -> None:
    env = service_env(
        fake_twilio.url,
        TWILIO_JOBS_SENDER_RATES=f'{{"{SENDER}": 10, "{OTHER}": 0}}',
        TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT="4",
    )
    start_worker(env, name="w1")
    start_worker(env, name="w2")
    fake_twilio.set_latency(0.2)
    jobs = Client(make_settings(env))
    paced = campaign(jobs, 40)  # 10/s: about 4 s
    free = campaign(jobs, 60, sender=OTHER)  # no rate limit: the in-flight limit binds
    wait_until(done(jobs, paced), timeout=60)
    wait_until(done(jobs, free), timeout=60)

    assert fake_twilio.created_count == 100
    assert fake_twilio.max_per_window(SENDER, 1.0) <= 10 + 1
    times = sorted(t for t, _, sender, _ in fake_twilio.create_times if sender == SENDER)
    assert times[-1] - times[0] >= 3.0
    peak = fake_twilio.peak_in_flight[DEFAULT_ACCOUNT_SID]
    assert 3 <= peak <= 4, peak
    jobs.close()


def test_single_sends_are_paced_too(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Callable[..., WorkerProcess]
) -> None:
    env = service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES=f'{{"{SENDER}": 10}}')
    start_worker(env, name="w1")
    start_worker(env, name="w2")
    jobs = Client(make_settings(env))
    ids = [
        jobs.send_sms(
            account_sid=DEFAULT_ACCOUNT_SID,
            account_token=DEFAULT_AUTH_TOKEN,
            from_=SENDER,
            to=number(i),
            body=f"single {i}",
        ).jobId  # fmt: skip
        for i in range(30)
    ]
    records = [jobs.wait(job_id, 30) for job_id in ids]
    assert {r.status for r in records} == {"succeeded"}
    assert {r.attempts for r in records} == {1}
    assert fake_twilio.created_count == 30
    assert fake_twilio.max_per_window(SENDER, 1.0) <= 10 + 1
    times = sorted(t for t, _, sender, _ in fake_twilio.create_times if sender == SENDER)
    assert times[-1] - times[0] >= 2.5
    jobs.close()


def test_429_storm_lowers_the_limit_and_everything_is_sent_once(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Callable[..., WorkerProcess]
) -> None:
    env = service_env(
        fake_twilio.url,
        TWILIO_JOBS_SENDER_RATES=f'{{"{SENDER}": 0}}',
        TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT="16",
        TWILIO_JOBS_MAX_ATTEMPTS="40",
        TWILIO_JOBS_AIMD_CUT_INTERVAL="0.2",
    )
    start_worker(env, name="w1")
    start_worker(env, name="w2")
    fake_twilio.set_latency(0.05)
    fake_twilio.fail_ratio(429, 0.3)
    jobs = Client(make_settings(env))
    campaign_id = campaign(jobs, 300)
    limits: list[int] = []

    def storm_seen() -> bool:
        status = jobs.campaign_status(campaign_id)
        limits.append(status.pacing.inFlightLimit)
        return status.counts["succeeded"] >= 100

    wait_until(storm_seen, timeout=60, interval=0.1)
    assert min(limits) < 16
    fake_twilio.fail_ratio(429, 0)
    status = wait_until(done(jobs, campaign_id), timeout=90)
    assert status.counts["succeeded"] == 300

    sent = collections.Counter(m["to"] for m in fake_twilio.messages)
    assert len(sent) == 300 and set(sent.values()) == {1}
    assert fake_twilio.create_attempts > 300
    assert fake_twilio.peak_in_flight[DEFAULT_ACCOUNT_SID] <= 16
    started = time.monotonic()
    # Recovery is additive: back to the configured limit within its pace (1 slot per second).
    wait_until(
        lambda: jobs.campaign_status(campaign_id).pacing.inFlightLimit == 16,
        timeout=30,
        interval=0.5,
    )
    assert time.monotonic() - started < 30
    jobs.close()
