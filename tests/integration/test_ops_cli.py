"""The operator's CLI against a served API and a default worker: `--json` for scripts,
tables for people, the API's own error text and exit 1 on errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from producer.cli import main
from tests.conftest import SEED_SMS, WorkerProcess, served_api, service_env
from tests.fake_twilio import DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs.client import Client
from twilio_jobs.schemas import JobKind

pytestmark = pytest.mark.integration


@pytest.fixture
def served(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Callable[..., WorkerProcess]
) -> Iterator[tuple[str, Client]]:
    env = service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES='{"+15005550006": 0}')
    start_worker(env, concurrency=None)
    with served_api(env) as served:
        yield served


def cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--url", url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_find_a_failed_job_retry_it_and_see_it_succeed(
    served: tuple[str, Client], fake_twilio: FakeTwilio, capsys: pytest.CaptureFixture[str]
) -> None:
    url, jobs = served
    fake_twilio.add_fault(401, code=20003, message="Authenticate")
    job_id = jobs.submit(JobKind.sendSms, SEED_SMS).job_id

    code, out, _ = cli(capsys, url, "jobs", "wait", job_id, "--json")
    assert code == 1  # not succeeded
    failed = json.loads(out)
    assert failed["status"] == "failed" and failed["error"]["code"] == 20003

    code, out, _ = cli(capsys, url, "jobs", "retry", job_id, "--account-token", DEFAULT_AUTH_TOKEN)
    assert code == 0 and job_id in out  # a table for people (queued, or already further)
    code, out, _ = cli(capsys, url, "jobs", "wait", job_id, "--json")
    assert code == 0 and json.loads(out)["status"] == "succeeded"
    assert fake_twilio.created_count == 1

    code, out, _ = cli(capsys, url, "jobs", "show", job_id)
    assert code == 0 and job_id in out and "succeeded" in out
    code, out, _ = cli(capsys, url, "jobs", "list", "--status", "succeeded", "--json")
    assert code == 0 and [j["jobId"] for j in json.loads(out)["jobs"]] == [job_id]


def test_cancel_campaigns_webhooks_and_errors(
    served: tuple[str, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    url, jobs = served
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    job_id = jobs.submit(JobKind.sendSms, {**SEED_SMS, "sendAt": later}).job_id
    code, out, _ = cli(capsys, url, "jobs", "cancel", job_id, "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"

    campaign = jobs.create_campaign(
        **{**SEED_SMS, "recipients": [{"to": "+14155550101"}], "sendAt": later}
    )
    cid = campaign.campaignId
    assert cid is not None
    code, out, _ = cli(capsys, url, "campaigns", "pause", cid, "--json")
    assert code == 0 and json.loads(out)["state"] == "paused"
    code, out, _ = cli(capsys, url, "campaigns", "show", cid)
    assert code == 0 and "paused" in out and "total" in out
    code, out, _ = cli(capsys, url, "campaigns", "jobs", cid, "--json")
    assert code == 0 and len(json.loads(out)["jobs"]) == 1
    code, out, _ = cli(capsys, url, "campaigns", "list", "--json")
    assert code == 0 and [c["campaignId"] for c in json.loads(out)["campaigns"]] == [cid]
    code, out, _ = cli(capsys, url, "campaigns", "cancel", cid, "--json")
    assert code == 0 and json.loads(out)["state"] == "cancelled"

    code, out, _ = cli(capsys, url, "webhooks", "failed", "--json")
    assert code == 0 and json.loads(out) == []

    code, out, err = cli(capsys, url, "jobs", "show", "0" * 32)
    assert code == 1 and f"Job not found: {'0' * 32}" in err
