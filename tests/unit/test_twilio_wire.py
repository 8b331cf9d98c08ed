"""Reconciliation, the wire format and error classification on Twilio's own JSON shapes
(`twilio_jobs.twilio`).

The resources below are shaped as in Twilio's API reference (Message and Call resources, list
pages with `next_page_uri`), in each state a create can leave behind.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from twilio.base.version import Version
from twilio.http.response import Response

from twilio_jobs.errors import AmbiguousError, PermanentError, RetryableError
from twilio_jobs.schemas import JobKind
from twilio_jobs.settings import Settings
from twilio_jobs.twilio import reconcile, wire
from twilio_jobs.twilio.api import TwilioApi
from twilio_jobs.twilio.wire import Answer, Request
from twilio_jobs.twilio.wire import retry_after as _retry_after
from worker.transport import classify_aiohttp_error

ACCOUNT = "AC" + "a" * 32
SERVICE = "MG" + "b" * 32
TO, FROM = "+14155552345", "+15017122661"
SEND_STARTED = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC).timestamp()


def stamp(offset: float) -> str:
    """Twilio's RFC 2822 date, `offset` seconds after the send started."""
    return format_datetime(datetime.fromtimestamp(SEND_STARTED + offset, UTC))


def message(
    sid: str,
    *,
    status: str = "queued",
    created: float = 1.0,
    body: str = "Your code is 1234",
    from_: str | None = FROM,
    to: str = TO,
    service: str | None = None,
) -> dict[str, Any]:
    sent = status in ("sent", "delivered", "undelivered", "failed")
    return {
        "account_sid": ACCOUNT,
        "api_version": "2010-04-01",
        "body": body,
        "date_created": stamp(created),
        "date_sent": stamp(created + 1) if sent else None,
        "date_updated": stamp(created),
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media.json"},
        "to": to,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json",
    }


def call(sid: str, *, created: float = 1.0, to: str = TO, from_: str = FROM) -> dict[str, Any]:
    return {
        "account_sid": ACCOUNT,
        "answered_by": None,
        "api_version": "2010-04-01",
        "caller_name": None,
        "date_created": stamp(created),
        "date_updated": stamp(created),
        "direction": "outbound-api",
        "duration": None,
        "end_time": None,
        "from": from_,
        "from_formatted": from_,
        "parent_call_sid": None,
        "price": None,
        "sid": sid,
        "start_time": None,
        "status": "queued",
        "to": to,
        "to_formatted": to,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json",
    }


def page(key: str, items: list[dict[str, Any]], next_token: str | None = None) -> dict[str, Any]:
    base = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json?To=%2B14155552345&PageSize=100"
    return {
        key: items,
        "end": len(items) - 1,
        "first_page_uri": f"{base}&Page=0",
        "next_page_uri": f"{base}&Page=1&PageToken=PA{next_token}" if next_token else None,
        "page": 0,
        "page_size": 100,
        "previous_page_uri": None,
        "start": 0,
        "uri": f"{base}&Page=0",
    }


SMS = {"To": TO, "From": FROM, "Body": "Your code is 1234"}
SERVICE_SMS = {"To": TO, "MessagingServiceSid": SERVICE, "Body": "Your code is 1234"}


@pytest.mark.parametrize("status", ["accepted", "queued", "scheduled", "sending", "sent"])
def test_a_message_is_found_in_any_state(status: str) -> None:
    found, done = reconcile.scan(
        JobKind.sendSms, [message("SM1", status=status)], SMS, SEND_STARTED
    )
    assert done and found is not None and found["sid"] == "SM1"


def test_the_trial_prefix_is_allowed_and_other_bodies_are_not() -> None:
    trial = message("SM1", body=reconcile.TRIAL_PREFIX + "Your code is 1234")
    other = message("SM2", body="Your code is 9999")
    assert reconcile.scan(JobKind.sendSms, [trial], SMS, SEND_STARTED)[0] is not None
    assert reconcile.scan(JobKind.sendSms, [other], SMS, SEND_STARTED) == (None, False)


def test_a_messaging_service_send_without_from_matches_on_the_service() -> None:
    accepted = message("SM1", status="accepted", from_=None, service=SERVICE)
    elsewhere = message("SM2", status="accepted", from_=None, service="MG" + "c" * 32)
    assert reconcile.list_query(JobKind.sendSms, SERVICE_SMS) == {"To": TO, "PageSize": 100}
    found, _ = reconcile.scan(JobKind.sendSms, [elsewhere, accepted], SERVICE_SMS, SEND_STARTED)
    assert found is not None and found["sid"] == "SM1"


def test_the_query_never_filters_on_the_sent_date() -> None:
    query = reconcile.list_query(JobKind.sendSms, SMS)
    assert query == {"To": TO, "From": FROM, "PageSize": 100}
    assert not any(key.startswith("DateSent") for key in query)


def test_older_resources_end_the_search_and_skew_is_allowed() -> None:
    older = message("SM0", created=-60)
    assert reconcile.scan(JobKind.sendSms, [older], SMS, SEND_STARTED) == (None, True)
    skewed = message("SM1", created=-(reconcile.CLOCK_SKEW - 1))
    assert reconcile.scan(JobKind.sendSms, [skewed], SMS, SEND_STARTED)[0] is not None


def test_a_resource_taken_by_another_job_is_passed_over() -> None:
    items = [message("SM2", created=2), message("SM1", created=1)]
    found, _ = reconcile.scan(
        JobKind.sendSms, items, SMS, SEND_STARTED, taken=lambda sid: sid == "SM2"
    )
    assert found is not None and found["sid"] == "SM1"


def test_rewritten_bodies_are_not_compared() -> None:
    params = {**SMS, "SmartEncoded": "true"}
    rewritten = message("SM1", body="Your code is 1234 (smart)")
    assert reconcile.scan(JobKind.sendSms, [rewritten], params, SEND_STARTED)[0] is not None


def test_a_call_matches_on_to_from_and_creation_time() -> None:
    params = {"To": TO, "From": FROM, "Url": "https://x"}
    assert reconcile.scan(JobKind.makeCall, [call("CA1")], params, SEND_STARTED)[0] is not None
    other = call("CA2", from_="+15005550006")
    assert reconcile.scan(JobKind.makeCall, [other], params, SEND_STARTED) == (None, False)


def test_next_page_uri_is_split_into_path_and_query() -> None:
    following = reconcile.next_page(page("messages", [], "SM9")["next_page_uri"], "/2010-04-01")
    assert following == (
        f"/Accounts/{ACCOUNT}/Messages.json",
        {"To": TO, "PageSize": "100", "Page": "1", "PageToken": "PASM9"},
    )
    assert reconcile.next_page(None, "/2010-04-01") is None


class Replay:
    """A transport that answers with recorded pages and keeps what was asked."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages: Iterator[dict[str, Any]] = iter(pages)
        self.requests: list[Request] = []

    def send(self, request: Request) -> Answer:
        self.requests.append(request)
        return Answer(200, json.dumps(next(self.pages)).encode(), {})

    def close(self) -> None:
        pass


class PagedGateway(TwilioApi):
    """The API over recorded pages; `asked`: (path, query) of each request."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.replay = Replay(pages)
        super().__init__(self.replay, Settings(TWILIO_API_BASE_URL="http://127.0.0.1:9"))

    @property
    def asked(self) -> list[tuple[str, Mapping[str, Any]]]:
        out = []
        for request in self.replay.requests:
            parts = urlsplit(request.url)
            query: dict[str, Any] = dict(parse_qsl(parts.query))
            if "PageSize" in query and "Page" not in query:
                query["PageSize"] = int(query["PageSize"])
            out.append((parts.path.removeprefix("/2010-04-01"), query))
        return out


def test_find_pages_until_it_finds_the_queued_message() -> None:
    newer = [message(f"SMn{i}", created=30, body="another text") for i in range(100)]
    gateway = PagedGateway(
        [page("messages", newer, "SMn99"), page("messages", [message("SM1", status="queued")])]
    )
    found = gateway.find(JobKind.sendSms, ACCOUNT, "token", SMS, SEND_STARTED)
    assert found is not None and found["sid"] == "SM1"
    (first_uri, first_query), (second_uri, second_query) = gateway.asked
    assert first_uri == second_uri == f"/Accounts/{ACCOUNT}/Messages.json"
    assert first_query == {"To": TO, "From": FROM, "PageSize": 100}
    assert second_query["PageToken"] == "PASMn99" and second_query["Page"] == "1"


def test_find_stops_at_older_resources_and_at_the_last_page() -> None:
    gateway = PagedGateway([page("messages", [message("SM0", created=-600)], "SM0")])
    assert gateway.find(JobKind.sendSms, ACCOUNT, "token", SMS, SEND_STARTED) is None
    assert len(gateway.asked) == 1
    gateway = PagedGateway([page("messages", [])])
    assert gateway.find(JobKind.sendSms, ACCOUNT, "token", SMS, SEND_STARTED) is None


def test_find_gives_up_as_unknown_after_the_page_bound() -> None:
    busy = [message("SMx", created=30, body="another text")]
    pages = [page("messages", busy, f"SM{i}") for i in range(reconcile.MAX_PAGES + 1)]
    gateway = PagedGateway(pages)
    with pytest.raises(AmbiguousError, match="pages"):
        gateway.find(JobKind.sendSms, ACCOUNT, "token", SMS, SEND_STARTED)
    assert len(gateway.asked) == reconcile.MAX_PAGES


def test_find_for_calls_reads_the_calls_key() -> None:
    gateway = PagedGateway([page("calls", [call("CA1")])])
    params = {"To": TO, "From": FROM, "Url": "https://x"}
    found = gateway.find(JobKind.makeCall, ACCOUNT, "token", params, SEND_STARTED)
    assert found is not None and found["sid"] == "CA1"
    assert gateway.asked[0][0] == f"/Accounts/{ACCOUNT}/Calls.json"


# -- error classification (REST answers, aiohttp failures) and Retry-After ----------------------


def answer(status: int, code: int | None, message: str, **headers: str) -> Answer:
    body: dict[str, Any] = {"message": message, "status": status,
                            "more_info": f"https://www.twilio.com/docs/errors/{code}"}  # fmt: skip
    if code is not None:
        body["code"] = code
    return Answer(status, json.dumps(body).encode(), headers)


CREATE = wire.request("POST", "http://127.0.0.1:9/x", ACCOUNT, "token", form={})


def classify(status: int, code: int | None, message: str, **headers: str) -> Any:
    return wire.error_of(CREATE, answer(status, code, message, **headers))


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 20429, RetryableError),
        (503, 20503, RetryableError),
        (400, 20429, RetryableError),
        (500, 20500, AmbiguousError),
        (502, None, AmbiguousError),
        (504, None, AmbiguousError),
        (400, 21211, PermanentError),
        (401, 20003, PermanentError),
        (404, 20404, PermanentError),
        (400, 21610, PermanentError),
    ],
)
def test_rest_errors_are_classified(status: int, code: int | None, kind: type) -> None:
    error = classify(status, code, "x")
    assert type(error) is kind
    # Twilio's code, or the HTTP status when the body has none (as twilio-python has it).
    assert (error.status, error.code) == (status, status if code is None else code)
    assert error.message == f"[HTTP {status}] Unable to create record: x"


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": 21211, "message": "Invalid \'To\' Phone Number: +1500", "status": 400}',
        b'{"status": 503}',
        b"<html>Service Unavailable</html>",
        b'{"type": "https://x", "title": "Bad", "status": 400, "code": 60200, "detail": "d"}',
    ],
)
def test_error_texts_and_codes_are_twilio_pythons(body: bytes) -> None:
    """The message and code twilio-python's `Version.exception` gives the same answer."""
    status = json.loads(body).get("status", 503) if body.startswith(b"{") else 503
    ours = wire.error_of(CREATE, Answer(status, body, {}))
    theirs = Version.exception("POST", "/x", Response(status, body.decode()), wire.CREATE_FAILED)
    text = getattr(theirs, "msg", None) or f"{wire.CREATE_FAILED}: {theirs.detail}"
    assert ours.message == f"[HTTP {status}] {text}"
    assert ours.code == theirs.code


def test_verify_max_send_attempts_is_final_though_it_comes_as_429() -> None:
    start = wire.request(
        "POST", "http://h/v2/x", ACCOUNT, "t", form={}, final_codes=frozenset({60203})
    )
    error = wire.error_of(start, answer(429, 60203, "Max send attempts reached"))
    assert isinstance(error, PermanentError) and error.code == 60203
    assert isinstance(wire.error_of(start, answer(429, 20429, "Too Many Requests")), RetryableError)


def test_a_429_carries_its_retry_after() -> None:
    error = classify(429, 20429, "Too Many Requests", **{"Retry-After": "7"})
    assert error.retry_after == 7.0
    assert classify(429, 20429, "x").retry_after is None


def test_a_2xx_that_is_not_json_is_ambiguous() -> None:
    with pytest.raises(AmbiguousError, match="not JSON"):
        wire.interpret(CREATE, Answer(201, b"<html>", {}))


def test_the_request_carries_basic_auth_a_form_and_repeated_keys() -> None:
    req = wire.request("POST", "https://api.twilio.com/x", "ACa", "tok",
                       form={"To": "+1", "StatusCallbackEvent": ["initiated", "completed"]})  # fmt: skip
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"ACa:tok").decode()
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert req.body == b"To=%2B1&StatusCallbackEvent=initiated&StatusCallbackEvent=completed"


def test_retry_after_as_seconds_or_an_http_date() -> None:
    assert _retry_after({"Retry-After": "3"}) == 3.0
    assert _retry_after({"retry-after": "1.5"}) == 1.5
    assert _retry_after({"Retry-After": "-4"}) == 0.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (_retry_after({"Retry-After": when}) or 0) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert _retry_after({"Retry-After": past}) == 0.0
    assert _retry_after({"Retry-After": "soon"}) is None
    assert _retry_after(None) is None and _retry_after({}) is None


def test_aiohttp_failures_are_classified_by_whether_the_request_left() -> None:
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        ConnectionRefusedError(111, "refused"),
    )
    assert isinstance(classify_aiohttp_error(refused), RetryableError)
    assert isinstance(classify_aiohttp_error(aiohttp.ConnectionTimeoutError()), RetryableError)
    read = classify_aiohttp_error(aiohttp.SocketTimeoutError())
    assert isinstance(read, AmbiguousError) and "read timeout" in read.message
    assert isinstance(classify_aiohttp_error(TimeoutError()), AmbiguousError)
    lost = classify_aiohttp_error(aiohttp.ServerDisconnectedError())
    assert isinstance(lost, AmbiguousError) and "lost after sending" in lost.message


# -- endpoint specs: hosts, paths, callbacks, lanes ---------------------------------------------

VERIFY = {"ServiceSid": "VA" + "c" * 32, "To": "+14155552345", "Channel": "sms"}


def test_every_host_goes_to_the_one_base_url_in_tests_and_to_twilio_otherwise() -> None:
    from twilio_jobs.twilio.api import Hosts

    real = Hosts(Settings())
    assert real.url("api", "/2010-04-01/x") == "https://api.twilio.com/2010-04-01/x"
    assert real.url("verify", "/v2/x") == "https://verify.twilio.com/v2/x"
    fake = Hosts(Settings(TWILIO_API_BASE_URL="http://127.0.0.1:8097/"))
    assert fake.url("verify", "/v2/x") == "http://127.0.0.1:8097/v2/x"
    own = Hosts(Settings(TWILIO_API_BASE_URL="http://a", TWILIO_VERIFY_BASE_URL="http://v"))
    assert (own.url("api", "/p"), own.url("verify", "/p")) == ("http://a/p", "http://v/p")


def test_a_verification_start_puts_the_service_in_the_path_not_the_form() -> None:
    from twilio_jobs.twilio.api import Hosts, create_request
    from twilio_jobs.twilio.endpoints import endpoint

    spec = endpoint(JobKind.startVerification)
    req = create_request(Hosts(Settings()), spec, ACCOUNT, "tok", VERIFY)
    assert req.url == f"https://verify.twilio.com/v2/Services/{VERIFY['ServiceSid']}/Verifications"
    assert dict(parse_qsl(req.body.decode())) == {"To": VERIFY["To"], "Channel": "sms"}
    assert spec.lookup_path(ACCOUNT, VERIFY).endswith("/Verifications/%2B14155552345")
    sms = create_request(Hosts(Settings()), endpoint(JobKind.sendSms), ACCOUNT, "tok", SMS)
    assert sms.url == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


def test_status_callbacks_and_lanes_come_from_the_spec() -> None:
    from twilio_jobs.crypto import Cipher
    from twilio_jobs.pacing.lane import Lane
    from twilio_jobs.status_callbacks import with_status_callback

    settings = Settings(public_url="https://jobs.example.com")
    cipher = Cipher("k" * 32)
    call = with_status_callback({"To": TO}, "j1", settings, cipher, JobKind.makeCall)
    assert call["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert "StatusCallbackEvent" not in with_status_callback({}, "j1", settings, cipher)
    assert with_status_callback(VERIFY, "j1", settings, cipher, JobKind.startVerification) == VERIFY
    lane = Lane.of(JobKind.startVerification, ACCOUNT, VERIFY, "", settings)
    assert (lane.name, lane.interval) == (f"service:{VERIFY['ServiceSid']}", 0.0)
    assert Lane.of(JobKind.makeCall, ACCOUNT, {}, "", settings).name == "calls"


def fetched(**changes: Any) -> dict[str, Any]:
    """A Verification resource as Verify v2 returns it (ISO 8601 dates)."""
    when = datetime.fromtimestamp(SEND_STARTED + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    item = {"sid": "VE" + "d" * 32, "to": VERIFY["To"], "channel": "sms", "status": "pending",
            "date_created": when, "date_updated": when}  # fmt: skip
    return {**item, **changes}


def test_a_pending_verification_since_the_send_is_ours() -> None:
    assert reconcile.fetched_match(fetched(), VERIFY, SEND_STARTED)
    assert not reconcile.fetched_match(fetched(status="approved"), VERIFY, SEND_STARTED)
    assert not reconcile.fetched_match(fetched(channel="call"), VERIFY, SEND_STARTED)
    old = datetime.fromtimestamp(SEND_STARTED - 300, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert not reconcile.fetched_match(
        fetched(date_created=old, date_updated=old), VERIFY, SEND_STARTED
    )
    # Started earlier, sent again by this job's start: date_updated moved.
    assert reconcile.fetched_match(fetched(date_created=old), VERIFY, SEND_STARTED)
