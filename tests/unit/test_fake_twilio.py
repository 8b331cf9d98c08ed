from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.fake_twilio import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_VERIFY_SERVICE_SID,
    FakeTwilio,
)

SID, TOKEN = DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
OTHER_SID = "AC" + "1" * 32


class FakeHttpClient(TwilioHttpClient):  # type: ignore[misc]
    def __init__(self, base_url: str, timeout: float | None = None) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        for host in ("https://api.twilio.com", "https://verify.twilio.com"):
            url = url.replace(host, self.base_url)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeTwilio]:
    with FakeTwilio(accounts={SID: TOKEN, OTHER_SID: "other-token"}) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeTwilio) -> FakeTwilio:
    server.reset()
    server.set_latency(0)
    server.set_auto_callbacks(None)
    return server


def client_for(
    fake: FakeTwilio, sid: str = SID, token: str = TOKEN, timeout: float | None = None
) -> Client:
    return Client(sid, token, http_client=FakeHttpClient(fake.url, timeout))


@pytest.fixture
def client(fake: FakeTwilio) -> Client:
    return client_for(fake)


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                outer.received.append((self.path, dict(parse_qsl(body)), dict(self.headers)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/status?x=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_message_create_list_fetch(fake: FakeTwilio, client: Client) -> None:
    msg = client.messages.create(to="+15550001111", from_="+15550002222", body="hello")
    client.messages.create(to="+15550003333", from_="+15550002222", body="other")
    assert msg.sid.startswith("SM") and len(msg.sid) == 34
    assert (msg.status, msg.account_sid, msg.body, msg.num_segments) == (
        "queued",
        SID,
        "hello",
        "1",
    )
    assert msg.direction == "outbound-api" and msg.date_sent is None and msg.price_unit == "USD"
    assert abs((msg.date_created - datetime.now(UTC)).total_seconds()) < 5
    assert msg.uri == f"/2010-04-01/Accounts/{SID}/Messages/{msg.sid}.json"

    listed = client.messages.list(to="+15550001111", from_="+15550002222")
    assert [m.sid for m in listed] == [msg.sid]
    assert len(client.messages.list(page_size=1)) == 2
    assert client.messages(msg.sid).fetch().body == "hello"
    assert fake.count_by(to="+15550001111", body="hello") == 1
    assert fake.created_count == 2 and fake.requests_total >= 4


def test_date_sent_filters_leave_out_queued_messages(fake: FakeTwilio, client: Client) -> None:
    """Twilio's `DateSent` filters look at the sent date, which a queued message has not got."""
    before = datetime.now(UTC) - timedelta(seconds=2)
    fake.set_send_delay(0.3)
    msg = client.messages.create(to="+15550001111", from_="+15550002222", body="hello")
    assert client.messages(msg.sid).fetch().date_sent is None
    assert client.messages.list(to="+15550001111", date_sent_after=before) == []
    assert client.messages.list(date_sent=datetime.now(UTC).date()) == []
    assert [m.sid for m in client.messages.list(to="+15550001111")] == [msg.sid]
    assert wait_until(lambda: client.messages(msg.sid).fetch().status == "sent")
    sent = client.messages(msg.sid).fetch()
    assert sent.date_sent is not None and sent.date_sent >= sent.date_created
    listed = client.messages.list(to="+15550001111", date_sent_after=before)
    assert [m.sid for m in listed] == [msg.sid]
    assert client.messages.list(date_sent_before=before) == []


def test_lists_are_newest_first_and_paged(fake: FakeTwilio, client: Client) -> None:
    sids = [
        client.messages.create(to="+15550001111", from_="+15550002222", body=str(i)).sid
        for i in range(5)
    ]
    page = requests.get(
        f"{fake.url}/2010-04-01/Accounts/{SID}/Messages.json",
        params={"To": "+15550001111", "PageSize": 2},
        auth=(SID, TOKEN),
        timeout=5,
    ).json()
    assert [m["sid"] for m in page["messages"]] == sids[::-1][:2]
    assert page["next_page_uri"] and "Page=1" in page["next_page_uri"]
    assert [m.sid for m in client.messages.list(to="+15550001111", page_size=2)] == sids[::-1]


def test_messaging_service_send_is_accepted_with_from_null(
    fake: FakeTwilio, client: Client
) -> None:
    fake.set_send_delay(0.2)
    service = "MG" + "a" * 32
    msg = client.messages.create(to="+15550001111", body="hi", messaging_service_sid=service)
    assert (msg.status, msg.from_, msg.messaging_service_sid) == ("accepted", None, service)
    assert client.messages.list(to="+15550001111", from_="+15005550006") == []
    assert wait_until(lambda: client.messages(msg.sid).fetch().status == "sent")
    assert client.messages(msg.sid).fetch().from_ == "+15005550006"


def test_scheduled_message(fake: FakeTwilio, client: Client) -> None:
    at = datetime.now(UTC) + timedelta(hours=1)
    msg = client.messages.create(
        to="+15550001111",
        messaging_service_sid="MG" + "a" * 32,
        body="later",
        send_at=at,
        schedule_type="fixed",
    )
    assert msg.status == "scheduled" and msg.date_sent is None


def test_impossible_to_number_is_21211(client: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to="+150055444006", from_="+15005550006", body="x")
    assert (info.value.status, info.value.code) == (400, 21211)
    assert info.value.msg == "Unable to create record: Invalid 'To' Phone Number: +150055444006"
    with pytest.raises(TwilioRestException) as info:
        client.calls.create(to="+1415555", from_="+15005550006", url="https://x")
    assert info.value.code == 21211
    # A number in a range phonenumbers does not know yet is Twilio's to try, not refused.
    assert client.messages.create(to="+15005550001", from_="+15005550006", body="x").sid
    assert client.messages.create(to="client:alice", from_="+15005550006", body="x").sid


def test_concurrency_limit_is_429_without_retry_after(fake: FakeTwilio) -> None:
    fake.set_latency(0.4)
    fake.set_concurrency_limit(2)
    url = f"{fake.url}/2010-04-01/Accounts/{SID}/Messages.json"
    form = {"To": "+15550000001", "From": "+15550000002", "Body": "x"}
    answers: list[requests.Response] = []

    def post() -> None:
        answers.append(requests.post(url, data=form, auth=(SID, TOKEN), timeout=5))

    threads = [threading.Thread(target=post) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [201, 201, 429, 429, 429]
    throttled = [a for a in answers if a.status_code == 429]
    assert all("Retry-After" not in a.headers for a in throttled)
    assert throttled[0].json()["code"] == 20429 and fake.peak_in_flight == {SID: 2}

    fake.set_latency(0)
    fake.set_concurrency_limit(0, retry_after=2)
    assert requests.post(url, data=form, auth=(SID, TOKEN), timeout=5).headers["Retry-After"] == "2"
    fake.set_concurrency_limit(0, retry_after=30, retry_after_date=True)
    header = requests.post(url, data=form, auth=(SID, TOKEN), timeout=5).headers["Retry-After"]
    assert (
        header.endswith(" GMT")
        and 25 <= (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds() <= 31
    )
    fake.set_concurrency_limit(None)
    assert requests.post(url, data=form, auth=(SID, TOKEN), timeout=5).status_code == 201


def test_mms(client: Client) -> None:
    mms = client.messages.create(
        to="+15550001111", media_url=["https://a/1.png"], messaging_service_sid="MG" + "a" * 32
    )
    assert mms.sid.startswith("MM") and mms.num_media == "1"
    assert mms.from_ is None and mms.messaging_service_sid == "MG" + "a" * 32


def test_call_create_list_fetch(client: Client) -> None:
    call = client.calls.create(
        to="+15550001111", from_="+15550002222", twiml="<Response/>", method="POST"
    )
    assert call.sid.startswith("CA") and call.status == "queued" and call.start_time is None
    assert [c.sid for c in client.calls.list(to="+15550001111")] == [call.sid]
    assert client.calls.list(start_time_after=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert client.calls(call.sid).fetch().to == "+15550001111"


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "message"),
    [
        ({"to": "+15550005555", "body": "x"}, 400, 21603, 'A "From" phone number is required.'),
        (
            {"to": "", "from_": "+15550005555", "body": "x"},
            400,
            21604,
            "A 'To' phone number is required.",
        ),
        ({"to": "+15550005555", "from_": "+15550005556"}, 400, 21602, "Message body is required."),
        (
            {"to": "+15550005555", "from_": "+15550005556", "body": "x" * 1601},
            400,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ),
    ],
)
def test_message_validation(
    client: Client, kwargs: dict[str, Any], status: int, code: int, message: str
) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(**kwargs)
    assert (info.value.status, info.value.code) == (status, code)
    assert info.value.msg == f"Unable to create record: {message}"


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"url": "https://x", "method": "TEST"}, 20001, "Method is not valid: TEST"),
        ({"url": "https://x", "status_callback_method": "PUT"}, 20001, "Method is not valid: PUT"),
        ({}, 21205, "Url parameter is required."),
    ],
)
def test_call_validation(client: Client, kwargs: dict[str, Any], code: int, message: str) -> None:
    with pytest.raises(TwilioRestException) as info:
        client.calls.create(to="+15550005555", from_="+15550005556", **kwargs)
    assert (info.value.status, info.value.code, info.value.msg) == (
        400,
        code,
        f"Unable to create record: {message}",
    )
    with pytest.raises(TwilioRestException, match="Caller phone number is required"):
        client.calls.create(to="+15550005555", from_="", url="https://x")


def test_auth_errors(fake: FakeTwilio) -> None:
    with pytest.raises(TwilioRestException) as info:
        client_for(fake, token="wrong").messages.create(
            to="+15550000001", from_="+15550000002", body="x"
        )
    assert (info.value.status, info.value.code, info.value.msg) == (
        401,
        20003,
        "Unable to create record: Authenticate",
    )
    unknown = "AC" + "9" * 32
    with pytest.raises(TwilioRestException) as info:
        client_for(fake, sid=unknown).calls.create(
            to="+15550000001", from_="+15550000002", url="https://x"
        )
    assert info.value.status == 404 and info.value.code == 20404
    assert info.value.msg == (
        f"Unable to create record: The requested resource /2010-04-01/Accounts/{unknown}/Calls.json was not found"
    )
    with pytest.raises(TwilioRestException) as info:
        client_for(fake).messages("SM" + "0" * 32).fetch()
    assert info.value.status == 404
    fake.add_api_key("SK" + "2" * 32, "key-secret")
    keyed = Client("SK" + "2" * 32, "key-secret", SID, http_client=FakeHttpClient(fake.url))
    assert (
        keyed.messages.create(to="+15550000001", from_="+15550000002", body="x").account_sid == SID
    )
    assert fake.create_attempts == 3 and fake.created_count == 1


def test_faults(fake: FakeTwilio, client: Client) -> None:
    fake.add_fault(429, count=2, retry_after=3)
    fake.add_fault(400, code=21610, match_to="+15550009999")
    fake.add_fault(503, create_anyway=True, kind="Calls")
    for _ in range(2):
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to="+15550005555", from_="+15550005556", body="x")
        assert (info.value.status, info.value.code, info.value.msg) == (
            429,
            20429,
            "Unable to create record: Too Many Requests",
        )
    with pytest.raises(TwilioRestException, match="unsubscribed recipient"):
        client.messages.create(to="+15550009999", from_="+15550005556", body="x")
    with pytest.raises(TwilioRestException) as info:
        client.calls.create(to="+15550005555", from_="+15550005556", url="https://x")
    assert info.value.status == 503 and len(fake.calls) == 1
    assert (
        client.messages.create(to="+15550005555", from_="+15550005556", body="ok").status
        == "queued"
    )
    assert fake.create_attempts == 5 and fake.created_count == 2

    fake.add_fault(429, retry_after=1.5)
    response = requests.post(
        f"{fake.url}/2010-04-01/Accounts/{SID}/Messages.json",
        data={"To": "+15550000001", "From": "+15550000002", "Body": "x"},
        auth=(SID, TOKEN),
        timeout=5,
    )
    assert response.status_code == 429 and response.headers["Retry-After"] == "1.5"
    assert response.json()["more_info"] == "https://www.twilio.com/docs/errors/20429"

    fake.fail_ratio(503, 1.0)
    with pytest.raises(TwilioRestException):
        client.messages.create(to="+15550005555", from_="+15550005556", body="x")
    fake.fail_ratio(503, 0)
    client.messages.create(to="+15550005555", from_="+15550005556", body="x")


def test_delay_fault_creates_then_times_out(fake: FakeTwilio) -> None:
    fake.add_fault(500, create_anyway=True, delay=0.6)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client_for(fake, timeout=0.2).messages.create(
            to="+15550005555", from_="+15550005556", body="x"
        )
    assert fake.count_by(to="+15550005555") == 1 and fake.in_flight_now == {SID: 1}
    assert wait_until(lambda: fake.in_flight_now == {})


def test_in_flight_and_windows(fake: FakeTwilio) -> None:
    fake.set_latency(0.5)
    threads = [
        threading.Thread(
            target=client_for(fake).messages.create,
            kwargs={"to": "+15550000001", "from_": "+15550007777", "body": "x"},
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    assert wait_until(lambda: fake.in_flight_now == {SID: 4})
    for t in threads:
        t.join()
    assert fake.peak_in_flight == {SID: 4} and fake.in_flight_now == {}
    assert (
        fake.max_per_window("+15550007777") == 4
        and fake.max_per_window("+15550007777", window=0.0001) <= 4
    )
    assert [entry[1:] for entry in fake.create_times] == [(SID, "+15550007777", "Messages")] * 4


def test_status_callbacks(fake: FakeTwilio, client: Client, receiver: Receiver) -> None:
    msg = client.messages.create(
        to="+15550005555", from_="+15550005556", body="x", status_callback=receiver.url
    )
    assert fake.send_status_callbacks(msg.sid, ["sent", "undelivered"]) == [204, 204]
    (path, params, headers), (_, failed, _) = receiver.received
    assert path == "/status?x=1"
    assert params == {
        "MessageSid": msg.sid,
        "MessageStatus": "sent",
        "SmsSid": msg.sid,
        "SmsStatus": "sent",
        "AccountSid": SID,
        "From": "+15550005556",
        "To": "+15550005555",
        "ApiVersion": "2010-04-01",
    }
    assert RequestValidator(TOKEN).validate(receiver.url, params, headers["X-Twilio-Signature"])
    assert failed["ErrorCode"] == "30003" and fake.messages[0]["status"] == "undelivered"

    fake.set_auto_callbacks(["initiated", "ringing", "in-progress", "completed"])
    call = client.calls.create(
        to="+15550005555", from_="+15550005556", url="https://x", status_callback=receiver.url
    )
    asked = client.calls.create(
        to="+15550005555",
        from_="+15550005556",
        url="https://x",
        status_callback=receiver.url,
        status_callback_event=["ringing", "answered", "completed"],
    )
    assert wait_until(lambda: len(receiver.received) == 6)
    statuses = sorted((p["CallSid"], p["CallStatus"]) for _, p, _ in receiver.received[2:])
    # None asked: Twilio sends `completed` alone; `answered` arrives as in-progress.
    assert statuses == sorted(
        [(call.sid, "completed")]
        + [(asked.sid, s) for s in ("ringing", "in-progress", "completed")]
    )


def test_http_control_and_subprocess() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_twilio", "--port", "0", "--account", f"{OTHER_SID}:tok"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        assert requests.post(f"{url}/_fake/faults", json={"status": 429, "count": 1}, timeout=5).ok
        assert requests.post(f"{url}/_fake/set_latency", json={"seconds": 0.01}, timeout=5).ok
        assert requests.post(f"{url}/_fake/bogus", json={}, timeout=5).status_code == 404
        create = f"{url}/2010-04-01/Accounts/{OTHER_SID}/Messages.json"
        form = {"To": "+15550000001", "From": "+15550000002", "Body": "x"}
        assert (
            requests.post(create, data=form, auth=(OTHER_SID, "tok"), timeout=5).status_code == 429
        )
        assert (
            requests.post(create, data=form, auth=(OTHER_SID, "tok"), timeout=5).status_code == 201
        )
        stats = requests.get(f"{url}/_fake/stats", timeout=5).json()
        assert (stats["create_attempts"], stats["created_count"], stats["max_per_window"]) == (
            2,
            1,
            {"+15550000002": 1},
        )
        assert [m["body"] for m in requests.get(f"{url}/_fake/messages", timeout=5).json()] == ["x"]
        assert requests.post(f"{url}/_fake/reset", timeout=5).ok
        assert requests.get(f"{url}/_fake/stats", timeout=5).json()["created_count"] == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


# -- Verify v2, driven by twilio-python's own Verify client ------------------------------------


def test_verify_start_resends_on_the_pending_verification_then_refuses(
    fake: FakeTwilio, client: Client
) -> None:
    service = client.verify.v2.services(DEFAULT_VERIFY_SERVICE_SID)
    first = service.verifications.create(to="+14155550123", channel="sms", locale="fr")
    assert first.sid.startswith("VE") and first.status == "pending" and first.valid is False
    assert first.service_sid == DEFAULT_VERIFY_SERVICE_SID and first.account_sid == SID
    again = service.verifications.create(to="+14155550123", channel="call")
    assert again.sid == first.sid and again.channel == "call"
    assert len(again.send_code_attempts) == 2
    for _ in range(3):
        service.verifications.create(to="+14155550123", channel="sms")
    with pytest.raises(TwilioRestException) as refused:
        service.verifications.create(to="+14155550123", channel="sms")
    assert (refused.value.status, refused.value.code) == (429, 60203)
    assert fake.verification_sends == 5
    fetched = service.verifications("+14155550123").fetch()
    assert fetched.sid == first.sid
    assert service.verifications(first.sid).fetch().to == "+14155550123"


def test_verify_refuses_what_twilio_refuses(fake: FakeTwilio, client: Client) -> None:
    service = client.verify.v2.services(DEFAULT_VERIFY_SERVICE_SID)
    for to, channel, code in [("+1415", "sms", 60200), ("+14155550123", "pigeon", 60200)]:
        with pytest.raises(TwilioRestException) as refused:
            service.verifications.create(to=to, channel=channel)
        assert (refused.value.status, refused.value.code) == (400, code)
    with pytest.raises(TwilioRestException) as missing:
        client.verify.v2.services("VA" + "0" * 32).verifications.create(
            to="+14155550123", channel="sms"
        )
    assert (missing.value.status, missing.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException) as none:
        service.verifications("+14155550199").fetch()
    assert none.value.status == 404
    with pytest.raises(TwilioRestException) as wrong:
        client_for(fake, token="wrong").verify.v2.services(
            DEFAULT_VERIFY_SERVICE_SID
        ).verifications.create(to="+14155550123", channel="sms")
    assert wrong.value.status == 401
    assert fake.verification_sends == 0
