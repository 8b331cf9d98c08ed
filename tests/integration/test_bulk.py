"""Failed-job recovery in bulk: retry what a filter finds (never an opted-out or invalid
recipient), a campaign's "retry failed", and cancelling by filter."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from producer.api import create_app
from producer.cli import main
from tests.conftest import (
    SEED_SMS,
    WorkerProcess,
    make_settings,
    served_api,
    service_env,
    wait_until,
)
from tests.fake_twilio import DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs import HttpClient
from twilio_jobs.client import Client

pytestmark = pytest.mark.integration

OPTED_OUT, BAD_AUTH, FINE = "+14155550171", "+14155550172", "+14155550173"
REFUSED = "+14155550174"


def test_retry_failed_never_resends_a_21610_and_cancel_by_filter(
    fake_twilio: FakeTwilio, start_worker: Callable[..., WorkerProcess]
) -> None:
    env = service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES='{"+15005550006": 0}')
    start_worker(env)
    jobs = Client(make_settings(env))
    fake_twilio.add_fault(400, code=21610, message="Attempt to send to unsubscribed recipient",
                          match_to=OPTED_OUT)  # fmt: skip
    fake_twilio.add_fault(401, code=20003, message="Authenticate", match_to=BAD_AUTH)
    body = {**SEED_SMS, "recipients": [{"to": n} for n in (OPTED_OUT, BAD_AUTH, FINE)]}
    with TestClient(create_app(jobs.settings, jobs)) as api:
        campaign = api.post("/api/campaigns", json=body).json()["campaignId"]
        wait_until(lambda: api.get(f"/api/campaigns/{campaign}").json()["progress"] == 1.0)
        failed = api.get("/api/jobs", params={"status": "failed", "campaignId": campaign}).json()
        assert len(failed["jobs"]) == 2

        answer = api.post(
            f"/api/campaigns/{campaign}/retry-failed", json={"accountToken": DEFAULT_AUTH_TOKEN}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"matched": 2, "done": 1, "skipped": {"21610": 1}}
        wait_until(lambda: api.get(f"/api/campaigns/{campaign}").json()["counts"]["failed"] == 1)
        wait_until(lambda: fake_twilio.count_by(to=BAD_AUTH) == 1)
        # The 21610 recipient's one create was the refused one: had it been sent again (the
        # fault is used up), Twilio would hold a message to it.
        assert fake_twilio.count_by(to=OPTED_OUT) == 0
        again = api.post("/api/jobs/retry", json={"errorCode": 21610}).json()
        assert again == {"matched": 1, "done": 0, "skipped": {"21610": 1}}
        assert api.post("/api/jobs/retry", json={"bogus": 1}).status_code == 400

        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        held = api.post("/api/campaigns", json={**body, "sendAt": later}).json()["campaignId"]
        cancelled = api.post("/api/jobs/cancel", json={"campaignId": held}).json()
        assert cancelled == {"matched": 3, "done": 3, "skipped": {}}
        assert api.get(f"/api/campaigns/{held}").json()["counts"]["cancelled"] == 3
        sent = api.post("/api/jobs/cancel", json={"status": "succeeded"})
        assert sent.status_code == 400
    jobs.close()


def test_the_delivery_report_has_a_row_per_recipient_with_its_variables(
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    assert fake_twilio.count_by(to=REFUSED) == 0
    env = service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES='{"+15005550006": 0}')
    start_worker(env)
    fake_twilio.add_fault(400, code=21610, message="Attempt to send to unsubscribed recipient",
                          match_to=REFUSED)  # fmt: skip
    rows = [{"to": FINE, "name": "Ada", "city": "Oslo, NO"}, {"to": REFUSED, "name": "Bo"}]
    body = {**SEED_SMS, "body": "Hi {{name}} from {{city}}", "recipients": rows}
    body["recipients"][1]["city"] = "Lyon"
    with served_api(env) as (url, jobs):
        campaign = jobs.create_campaign(**body).campaignId
        assert campaign is not None
        wait_until(lambda: jobs.campaign_status(campaign).progress == 1.0)
        report = list(csv.reader(io.StringIO(HttpClient(url).campaign_report(campaign))))
        assert (
            main(["--url", url, "campaigns", "report", campaign, "-o", str(tmp_path / "r.csv")])
            == 0
        )
        assert main(["--url", url, "campaigns", "report", "0" * 32]) == 1
    header, *lines = report
    assert header == ["to", "name", "city", "status", "deliveryStatus", "errorCode", "twilioSid",
                      "createdAt", "updatedAt", "jobId"]  # fmt: skip
    by_to = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    assert set(by_to) == {FINE, REFUSED}
    assert (by_to[FINE]["name"], by_to[FINE]["city"], by_to[FINE]["status"]) == (
        "Ada", "Oslo, NO", "succeeded"
    )  # fmt: skip
    assert by_to[FINE]["twilioSid"] == fake_twilio.messages[0]["sid"]
    assert (by_to[REFUSED]["status"], by_to[REFUSED]["errorCode"]) == ("failed", "21610")
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("to,name,city,status")
