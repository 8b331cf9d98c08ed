"""Recipient consent (issue 14, items 1 and 2): inbound messages signed by Twilio (opt-out and
opt-in keywords change the suppression list; every message is an `inbound.message` webhook
event) and the suppression list managed through the API, the HTTP client and the CLI, against
a served API and a default worker."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from producer.api import create_app
from producer.cli import main
from tests.conftest import SEED_SMS, WorkerProcess, make_settings, service_env, wait_until
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio
from tests.integration.test_webhooks import WEBHOOK_SECRET, Receiver
from tests.services import free_port
from twilio_jobs import keys, verify_webhook
from twilio_jobs.client import Client
from twilio_jobs.http_client import HttpClient
from twilio_jobs.schemas import JobKind

pytestmark = pytest.mark.integration

PUBLIC = "https://jobs.example.com"
OUR_NUMBER = SEED_SMS["from"]
OTHER_NUMBER = "+15005550007"
RECIPIENT = "+14155550123"
SERVICE = "MG" + "0123456789abcdef0123456789abcdef"
OTHER_ACCOUNT = "AC" + "fedcba9876543210fedcba9876543210"
OTHER_TOKEN = "other-account-token-0123456789"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class Served:
    def __init__(self, url: str, jobs: Client, hooks: Receiver, fake: FakeTwilio) -> None:
        self.url, self.jobs, self.hooks, self.fake = url, jobs, hooks, fake
        self.http = HttpClient(url)

    def inbound(self, body: str, **kw: Any) -> tuple[int, str]:
        """A message from RECIPIENT to OUR_NUMBER, as Twilio posts it through the proxy: sent to
        the local server, signed over the public URL."""
        kw.setdefault("signed_url", f"{PUBLIC}/api/twilio/inbound")
        return self.fake.send_inbound(
            f"{self.url}/api/twilio/inbound",
            kw.pop("from_", RECIPIENT),
            kw.pop("to", OUR_NUMBER),
            body,
            **kw,
        )

    def send(self, **fields: Any) -> str:
        job = {**SEED_SMS, "to": RECIPIENT, **fields}
        return self.jobs.submit(JobKind.sendSms, job).job_id

    def ends(self, job_id: str) -> str:
        def final() -> str | None:
            status = self.jobs.redis.hget(keys.job(job_id), "status")
            return status if status in ("succeeded", "failed", "suppressed") else None

        return str(wait_until(final))

    def suppressed(self, account: str = DEFAULT_ACCOUNT_SID) -> dict[str, str]:
        return dict(self.jobs.redis.hgetall(keys.suppressed(account)))


@pytest.fixture
def served(
    fake_twilio: FakeTwilio, redis_conn: redis.Redis, start_worker: Callable[..., WorkerProcess]
) -> Iterator[Served]:
    hooks = Receiver()
    fake_twilio.add_account(OTHER_ACCOUNT, OTHER_TOKEN)
    env = service_env(
        fake_twilio.url,
        TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
        TWILIO_JOBS_PUBLIC_URL=PUBLIC,
        TWILIO_JOBS_INBOUND_URL=hooks.url(),
        TWILIO_JOBS_INBOUND_ACCOUNTS=json.dumps({OTHER_ACCOUNT: OTHER_TOKEN}),
        TWILIO_JOBS_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TWILIO_JOBS_SENDER_RATES=json.dumps({OUR_NUMBER: 0, OTHER_NUMBER: 0}),
    )
    start_worker(env, concurrency=None)
    jobs = Client(make_settings(env))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(jobs.settings, jobs), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=10)
    found = Served(f"http://127.0.0.1:{port}", jobs, hooks, fake_twilio)
    yield found
    found.http.close()
    server.should_exit = True
    thread.join(timeout=10)
    jobs.close()
    hooks.close()


def test_a_signed_stop_suppresses_the_sender_and_a_start_lifts_it(served: Served) -> None:
    status, text = served.inbound("  stop \n")
    assert (status, text) == (200, EMPTY_TWIML)
    entry = json.loads(served.suppressed()[f"{OUR_NUMBER} {RECIPIENT}"])
    assert entry["reason"] == "keyword" and entry["at"]

    # The next send to that number from that sender ends suppressed without calling Twilio.
    assert served.ends(served.send()) == "suppressed"
    assert served.fake.count_by(to=RECIPIENT) == 0
    # Another of the account's numbers may still send to it.
    assert served.ends(served.send(**{"from": OTHER_NUMBER})) == "succeeded"
    listed = served.http.list_suppressions(DEFAULT_ACCOUNT_SID, reason="keyword")
    assert [(s.sender, s.to, s.reason) for s in listed.suppressions] == [
        (OUR_NUMBER, RECIPIENT, "keyword")
    ]

    assert served.inbound("Start") == (200, EMPTY_TWIML)
    assert served.suppressed() == {}
    assert served.ends(served.send()) == "succeeded"
    assert served.fake.count_by(to=RECIPIENT, from_=OUR_NUMBER) == 1

    # HELP is recorded (counted, and marked on its event); every message is an event.
    assert served.inbound("HELP") == (200, EMPTY_TWIML)
    counts = served.jobs.redis.hgetall(keys.inbound_counts(DEFAULT_ACCOUNT_SID))
    assert counts == {"stop": "1", "start": "1", "help": "1"}
    wait_until(lambda: len(served.hooks.received()) >= 3)
    events = served.hooks.received()
    assert {d.event for d in events} == {"inbound.message"}
    for delivery in events:
        assert verify_webhook(delivery.body, delivery.headers, WEBHOOK_SECRET)
    bodies = sorted((d.json()["body"], d.json()["keyword"]) for d in events)
    assert bodies == [("  stop \n", "stop"), ("HELP", "help"), ("Start", "start")]
    first = events[0].json()
    assert first["from"] == RECIPIENT and first["to"] == OUR_NUMBER
    assert first["accountSid"] == DEFAULT_ACCOUNT_SID and first["messageSid"].startswith("SM")


def test_a_forged_or_unknown_inbound_message_is_refused_and_changes_nothing(
    served: Served,
) -> None:
    refusals = [
        served.inbound("STOP", account_token="not-the-token"),
        served.inbound("STOP", sign=False),
        # signed over the URL the proxy forwarded to, not the public one Twilio was given
        served.inbound("STOP", signed_url=f"{served.url}/api/twilio/inbound"),
        # an account this server has no token for
        served.inbound("STOP", account_sid="AC" + "1" * 32, account_token="whatever"),
    ]
    for status, text in refusals:
        assert status == 403, text
        assert json.loads(text)["callback"] == "error"
    assert served.suppressed() == {}
    assert not served.jobs.redis.exists(keys.inbound_counts(DEFAULT_ACCOUNT_SID))
    assert served.ends(served.send(to="+14155550124")) == "succeeded"  # the worker runs
    assert list(served.jobs.redis.scan_iter(keys.webhook("*"))) == []  # no event queued
    assert served.hooks.received() == []


def test_only_a_whole_message_keyword_counts(served: Served) -> None:
    for text in ("STOP PLEASE", "please stop", "stopp", "yes stop"):
        assert served.inbound(text) == (200, EMPTY_TWIML)
    assert served.suppressed() == {}
    assert served.ends(served.send()) == "succeeded"
    wait_until(lambda: len(served.hooks.received()) == 4)
    assert {d.json()["keyword"] for d in served.hooks.received()} == {None}


def test_a_stop_to_a_messaging_service_suppresses_the_whole_service(served: Served) -> None:
    # Another account's message, verified with its token from TWILIO_JOBS_INBOUND_ACCOUNTS.
    status, _ = served.inbound(
        "UNSUBSCRIBE",
        account_sid=OTHER_ACCOUNT,
        messaging_service_sid=SERVICE,
        to=OTHER_NUMBER,
    )
    assert status == 200
    assert set(served.suppressed(OTHER_ACCOUNT)) == {f"{SERVICE} {RECIPIENT}"}
    assert served.suppressed() == {}  # the default account is untouched
    other = {"accountSid": OTHER_ACCOUNT, "accountToken": OTHER_TOKEN}
    through_service = served.send(**other, **{"from": None, "messagingServiceSid": SERVICE})
    assert served.ends(through_service) == "suppressed"
    assert served.fake.count_by(to=RECIPIENT) == 0
    # A Twilio retry of the same message changes nothing; a START through the service lifts it.
    assert (
        served.inbound(
            "START", account_sid=OTHER_ACCOUNT, messaging_service_sid=SERVICE, to=OTHER_NUMBER
        )[0]
        == 200
    )
    assert served.suppressed(OTHER_ACCOUNT) == {}


def test_scopes_and_a_csv_round_trip(
    served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    http = served.http
    added = http.add_suppression(DEFAULT_ACCOUNT_SID, RECIPIENT)  # the whole account
    assert (added.sender, added.reason) == ("*", "manual")
    assert served.ends(served.send(**{"from": OTHER_NUMBER})) == "suppressed"
    http.add_suppression(DEFAULT_ACCOUNT_SID, "+14155550124", OUR_NUMBER)
    http.add_suppression(DEFAULT_ACCOUNT_SID, "+14155550125", SERVICE, reason="21610")
    exported = http.export_suppressions(DEFAULT_ACCOUNT_SID)
    lines = exported.splitlines()
    assert lines[0] == "to,sender,reason,at" and len(lines) == 4

    scoped = http.list_suppressions(DEFAULT_ACCOUNT_SID, sender="*").suppressions
    assert [s.to for s in scoped] == [RECIPIENT]
    assert [
        s.to for s in http.list_suppressions(DEFAULT_ACCOUNT_SID, reason="21610").suppressions
    ] == ["+14155550125"]
    assert http.lift_suppression(DEFAULT_ACCOUNT_SID, RECIPIENT) == 1
    assert served.ends(served.send(**{"from": OTHER_NUMBER})) == "succeeded"

    # Import into another account (proven: no API keys here), then export it again.
    assert http.import_suppressions(OTHER_ACCOUNT, exported) == 3
    again = http.export_suppressions(OTHER_ACCOUNT)
    assert sorted(again.splitlines()) == sorted(lines)

    # The CLI does the same.
    def cli(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["--url", served.url, "suppressions", *args])
        return code, capsys.readouterr().out

    code, out = cli("add", DEFAULT_ACCOUNT_SID, "+14155550126", "--sender", OUR_NUMBER, "--json")
    assert code == 0 and json.loads(out)["reason"] == "manual"
    code, out = cli("list", DEFAULT_ACCOUNT_SID, "--reason", "manual", "--json")
    assert code == 0
    assert sorted(s["to"] for s in json.loads(out)["suppressions"]) == [
        "+14155550124",
        "+14155550126",
    ]
    code, out = cli("export", DEFAULT_ACCOUNT_SID)
    assert code == 0 and out.splitlines()[0] == "to,sender,reason,at" and len(out.splitlines()) == 4
    path = tmp_path / "stops.csv"
    path.write_text("to\n+14155550127\n")
    code, out = cli("import", DEFAULT_ACCOUNT_SID, str(path), "--json")
    assert code == 0 and json.loads(out) == {"imported": 1}
    entry = http.list_suppressions(DEFAULT_ACCOUNT_SID, to="+14155550127").suppressions
    assert [(s.sender, s.reason) for s in entry] == [("*", "import")]
    code, out = cli("remove", DEFAULT_ACCOUNT_SID, "+14155550126", "--json")
    assert code == 0 and json.loads(out) == {"lifted": 1}


def test_a_malformed_import_is_a_400_that_changes_nothing(served: Served) -> None:
    from twilio_jobs.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="line 3"):
        served.http.import_suppressions(
            DEFAULT_ACCOUNT_SID, "to,sender\n+14155550124,*\nnot a number,*\n"
        )
    with pytest.raises(InvalidRequest, match="'to' column"):
        served.http.import_suppressions(DEFAULT_ACCOUNT_SID, "number\n+14155550124\n")
    assert served.suppressed() == {}


def test_an_account_registered_through_the_api_has_its_inbound_messages_accepted(
    served: Served,
) -> None:
    third, token = "AC" + "3" * 32, "third-account-token-0123456789"
    served.fake.add_account(third, token)
    assert served.inbound("STOP", account_sid=third, account_token=token)[0] == 403

    wrong = httpx.post(
        f"{served.url}/api/accounts/inbound", json={"accountSid": third, "accountToken": "guess"}
    )
    assert wrong.status_code == 403 and wrong.json()["callback"] == "error"
    assert not served.jobs.redis.exists(keys.inbound_token(third))
    registered = httpx.post(
        f"{served.url}/api/accounts/inbound", json={"accountSid": third, "accountToken": token}
    )
    assert registered.status_code == 200 and registered.json()["accountSid"] == third
    stored = served.jobs.redis.get(keys.inbound_token(third))
    assert stored and token not in stored  # encrypted at rest

    assert served.inbound("STOP", account_sid=third, account_token=token) == (200, EMPTY_TWIML)
    assert set(served.suppressed(third)) == {f"{OUR_NUMBER} {RECIPIENT}"}
    assert served.inbound("START", account_sid=third, account_token="guess")[0] == 403
    assert set(served.suppressed(third)) == {f"{OUR_NUMBER} {RECIPIENT}"}
