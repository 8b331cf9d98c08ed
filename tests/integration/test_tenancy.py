"""Tenancy end to end: a send Twilio accepted proves the account to its tenant; the server's
default credentials prove nothing; an opt-out holds for every tenant, whoever caused it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from producer.api import create_app
from tests.conftest import SEED_SMS, WorkerProcess, make_settings
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from twilio_jobs.client import Client

pytestmark = pytest.mark.integration

ALPHA = {"Authorization": "Bearer key-alpha-0123456789"}
BRAVO = {"Authorization": "Bearer key-bravo-0123456789"}
CHARLIE = {"Authorization": "Bearer key-charlie-0123456789"}
KEYS = "alpha:key-alpha-0123456789,bravo:key-bravo-0123456789,charlie:key-charlie-0123456789"
STOPPED = "+14155550199"


def sent(api: TestClient, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    answer = api.post("/api/twilio/sendSms", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    record: dict[str, Any] = api.get(
        answer.json()["statusUrl"], params={"wait": 20}, headers=headers
    ).json()
    return record


def test_proof_by_send_and_an_opt_out_that_binds_every_tenant(
    env: dict[str, str], fake_twilio: FakeTwilio, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker(env)
    settings = make_settings(
        {
            **env,
            "TWILIO_JOBS_API_KEYS": KEYS,
            "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        }
    )
    jobs = Client(settings)
    query = {"accountSid": DEFAULT_ACCOUNT_SID}
    with TestClient(create_app(settings, jobs)) as api:
        # Before any send, nobody has proven the account.
        assert api.get("/api/suppressions", params=query, headers=ALPHA).status_code == 403

        # Alpha's accepted send, with its own token, proves the account to alpha.
        assert sent(api, SEED_SMS, ALPHA)["status"] == "succeeded"
        assert api.get("/api/accounts", headers=ALPHA).json() == {"accounts": [DEFAULT_ACCOUNT_SID]}

        # Alpha texts someone who said STOP: the account gets a suppression.
        fake_twilio.add_fault(400, code=21610, match_to=STOPPED, count=1000)
        failed = sent(api, {**SEED_SMS, "to": STOPPED}, ALPHA)
        assert failed["status"] == "failed" and failed["error"]["code"] == 21610
        mine = api.get("/api/suppressions", params=query, headers=ALPHA).json()["suppressions"]
        assert [(s["to"], s["jobId"]) for s in mine] == [(STOPPED, failed["jobId"])]

        # The scenario: bravo can neither read nor lift it.
        theirs = api.get("/api/suppressions", params=query, headers=BRAVO)
        assert theirs.status_code == 403 and STOPPED not in theirs.text
        lift = api.delete("/api/suppressions", params={**query, "to": STOPPED}, headers=BRAVO)
        assert lift.status_code == 403

        # Charlie sends with the server's default credentials: that proves nothing to charlie.
        default = sent(api, {"from": SEED_SMS["from"], "to": "+14155550123", "body": "hi"}, CHARLIE)
        assert default["status"] == "succeeded"
        assert api.get("/api/accounts", headers=CHARLIE).json() == {"accounts": []}
        assert api.get("/api/suppressions", params=query, headers=CHARLIE).status_code == 403

        # The opt-out belongs to the recipient: bravo's send to them is suppressed too, and a
        # send that never reached Twilio proves nothing.
        attempts = fake_twilio.create_attempts
        blocked = sent(api, {**SEED_SMS, "to": STOPPED}, BRAVO)
        assert blocked["status"] == "suppressed" and blocked["error"]["code"] == 21610
        assert fake_twilio.create_attempts == attempts
        assert api.get("/api/accounts", headers=BRAVO).json() == {"accounts": []}

        # Alpha, who holds the account, may lift it.
        lifted = api.delete("/api/suppressions", params={**query, "to": STOPPED}, headers=ALPHA)
        assert lifted.json() == {"lifted": 1}
    jobs.close()
