"""Local fake of Twilio's REST API 2010-04-01 (Messages and Calls) and of Verify v2
(Verifications) for tests and benchmarks; both hosts are served on one port.

In-process: ``with FakeTwilio(latency=0.1) as fake: ...`` (server on its own thread and loop).
Separate process: ``python -m tests.fake_twilio --port 8099 --latency 0.1 [--account SID:TOKEN]``,
controlled over HTTP via ``/_fake/...`` (see ``FakeTwilio._routes``).

It follows Twilio's documented behaviour (shared/TWILIO.md), never our code's assumptions:
- a new message is `queued` (`accepted`, with `from` null, for a Messaging Service without
  `From`; `scheduled` with `SendAt`), and its `date_sent` stays null until Twilio hands it to
  the carrier, `send_delay` seconds later (default 10 s, longer than the worker's reconciliation
  delay): the `DateSent` list filters apply to that sent date, so they leave out what is still
  queued. Lists are newest first and paged;
- a `To` that cannot be a phone number (wrong length for its country) is 21211;
- `concurrency_limit`: more requests in flight for an account than that is 429 (20429), with a
  `Retry-After` only when one is configured (seconds, or an HTTP date);
- a call's status callbacks are sent only for the events its `StatusCallbackEvent` asked for
  (`completed` alone when none were);
- Verify: a service must exist (`add_service`; one default service per default account) or it
  is 404 20404; a start for a `To` that has a pending verification on that service sends the
  code again on the same verification (same SID, one more `send_code_attempts` entry), and the
  sixth send within its 10 minutes is 429 60203 (max send attempts reached); a verification is
  fetched by its SID or by its `To` while pending; bad parameters are 400 60200.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import operator
import random
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from typing import Any, Literal, Self
from urllib.parse import unquote, urlencode

import aiohttp
import phonenumbers
from aiohttp import web
from twilio.request_validator import RequestValidator

DEFAULT_ACCOUNT_SID = "AC5f37acb24007a320eefb5ffaeb498a78"
DEFAULT_AUTH_TOKEN = "fake-auth-token-5b1c0e0c9d2a4f7e"
DEFAULT_VERIFY_SERVICE_SID = "VA" + "5f37acb24007a320eefb5ffaeb498a78"
VERIFY_CHANNELS = frozenset({"sms", "call", "email", "whatsapp", "sna", "auto"})
VERIFY_MAX_SENDS = 5
VERIFY_LIFETIME = 600.0
API_VERSION = "2010-04-01"
SERVICE_FROM_NUMBER = "+15005550006"
MAX_BODY_LENGTH = 1600
AUTO_CALLBACK_STEP = 0.05
DEFAULT_SEND_DELAY = 10.0
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
MAX_PAGE_SIZE = 1000
UNSENT = frozenset({"accepted", "queued", "scheduled"})
# Which StatusCallbackEvent asks for a call status; final statuses all come as `completed`.
CALL_EVENTS = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}

Kind = Literal["Messages", "Calls", "Verifications"]
Form = dict[str, list[str]]
CreateTime = tuple[float, str, str, str]

_DEFAULT_ERRORS: dict[int, tuple[int, str]] = {
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}
_CODE_MESSAGES = {21610: "Attempt to send to unsubscribed recipient"}
_CALLBACK_ERROR_CODES = {"failed": "30008", "undelivered": "30003"}
_CONTROL_OPS = frozenset(
    ("add_fault", "fail_ratio", "set_latency", "reset", "set_send_delay")
    + ("add_account", "add_api_key", "set_auto_callbacks", "set_concurrency_limit")
    + ("add_service",)
)


def retry_after_header(seconds: float | None, as_date: bool = False) -> str | None:
    """`Retry-After` as Twilio may send it: seconds, or an HTTP date."""
    if seconds is None:
        return None
    if as_date:
        return format_datetime(datetime.fromtimestamp(time.time() + seconds, UTC), usegmt=True)
    return f"{seconds:g}"


class ApiError(Exception):
    def __init__(
        self, status: int, code: int, message: str, retry_after: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def response(self) -> web.Response:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        payload = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return _json(payload, self.status, headers)


@dataclass
class Fault:
    status: int
    remaining: int
    code: int
    message: str
    match_to: str | None = None
    retry_after: float | None = None
    create_anyway: bool = False
    delay: float | None = None
    kind: str | None = None
    retry_after_date: bool = False

    def error(self) -> ApiError:
        header = retry_after_header(self.retry_after, self.retry_after_date)
        return ApiError(self.status, self.code, self.message, header)


@dataclass
class _Record:
    kind: str
    account_sid: str
    resource: dict[str, Any]
    created: datetime
    status_callback: str | None
    sends_at: float = 0.0
    """When a message leaves Twilio's queue (unix time): `date_sent` is null until then."""
    events: frozenset[str] = frozenset({"completed"})
    """A call's StatusCallbackEvent."""

    def advance(self, now: float) -> None:
        """Hand a queued message to the carrier once its time in Twilio's queue is over."""
        resource = self.resource
        if self.kind != "Messages" or resource["status"] not in UNSENT or now < self.sends_at:
            return
        stamp = _rfc2822(int(self.sends_at))
        resource.update(status="sent", date_sent=stamp, date_updated=stamp)
        if resource["from"] is None:
            resource["from"] = SERVICE_FROM_NUMBER

    @property
    def sent(self) -> datetime | None:
        """The sent date the `DateSent` filters look at (`StartTime` for a call)."""
        stamp = self.resource.get("date_sent" if self.kind == "Messages" else "start_time")
        return parsedate_to_datetime(stamp) if stamp else None


def _iso(epoch: float) -> str:
    """Verify's dates: ISO 8601 in UTC, whole seconds."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(payload), status=status, headers=headers, content_type="application/json"
    )


def _resolve_error(status: int, code: int | None, message: str | None) -> tuple[int, str]:
    default_code, default_message = _DEFAULT_ERRORS.get(
        status, (20000 + status, HTTPStatus(status).phrase)
    )
    code = default_code if code is None else code
    return code, message or _CODE_MESSAGES.get(code) or default_message


@functools.lru_cache(maxsize=8)
def _rfc2822(epoch_second: int) -> str:
    return format_datetime(datetime.fromtimestamp(epoch_second, UTC))


def _first(form: Form, key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


def _parse_form(raw: bytes) -> Form:
    form: Form = {}
    for pair in raw.decode().replace("+", " ").split("&"):
        if pair:
            key, _, value = pair.partition("=")
            form.setdefault(unquote(key), []).append(unquote(value))
    return form


def _basic_auth(header: str) -> tuple[str, str]:
    if not header.startswith("Basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return "", ""
    return user, password


def _time_filter(
    name: str, raw: str, op: Callable[[Any, Any], bool]
) -> Callable[[datetime | None], bool]:
    """A `DateSent`/`StartTime` filter: what has no such date yet (not sent, not started) is
    left out, as Twilio does."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, 20001, f"Invalid {name}: {raw}") from None
    if len(raw) == 10 or op is operator.eq:
        day = moment.date()
        return lambda sent: sent is not None and op(sent.date(), day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return lambda sent: sent is not None and op(sent.replace(microsecond=0), moment)


def _max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best = low = 0
    for high, stamp in enumerate(stamps):
        while stamp - stamps[low] >= window:
            low += 1
        best = max(best, high - low + 1)
    return best


def _possible_number(to: str) -> bool:
    """Only what cannot be a phone number at all (wrong length for its country) is refused;
    a number in a range newer than the library's metadata is Twilio's to try."""
    if not to.startswith("+"):
        return True  # client:, sip:, whatsapp: and other addresses
    try:
        return bool(phonenumbers.is_possible_number(phonenumbers.parse(to, None)))
    except phonenumbers.NumberParseException:
        return False


def _check_to(form: Form) -> None:
    to = _first(form, "To")
    if to and not _possible_number(to):
        raise ApiError(400, 21211, f"Invalid 'To' Phone Number: {to}")


def _call_events(form: Form) -> frozenset[str]:
    asked = {e.lower() for raw in form.get("StatusCallbackEvent", []) for e in raw.split()}
    return frozenset(asked) or frozenset({"completed"})


def _validate(kind: str, form: Form) -> None:
    _check_to(form)
    if kind == "Messages":
        body = _first(form, "Body") or ""
        if not _first(form, "To"):
            raise ApiError(400, 21604, "A 'To' phone number is required.")
        if not _first(form, "From") and not _first(form, "MessagingServiceSid"):
            raise ApiError(400, 21603, 'A "From" phone number is required.')
        if not body and not form.get("MediaUrl") and not _first(form, "ContentSid"):
            raise ApiError(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_LENGTH:
            raise ApiError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        return
    if not _first(form, "To"):
        raise ApiError(400, 21201, "No 'To' number is specified")
    if not _first(form, "From"):
        raise ApiError(400, 21213, "Caller phone number is required")
    if not any(_first(form, key) for key in ("Url", "Twiml", "ApplicationSid")):
        raise ApiError(400, 21205, "Url parameter is required.")
    for key in ("Method", "StatusCallbackMethod"):
        method = _first(form, key)
        if method is not None and method.upper() not in ("GET", "POST"):
            raise ApiError(400, 20001, f"Method is not valid: {method}")


def _message_status(form: Form) -> str:
    if _first(form, "SendAt") and _first(form, "ScheduleType") == "fixed":
        return "scheduled"
    return "queued" if _first(form, "From") else "accepted"


def _build_resource(kind: str, account: str, form: Form, now: datetime) -> dict[str, Any]:
    stamp = _rfc2822(int(now.timestamp()))
    to = _first(form, "To")
    if kind == "Messages":
        media = form.get("MediaUrl", [])
        sid = ("MM" if media else "SM") + uuid.uuid4().hex
        uri = f"/{API_VERSION}/Accounts/{account}/Messages/{sid}"
        # A Messaging Service picks the sender when it sends: until then `from` is null.
        return {
            "account_sid": account, "api_version": API_VERSION, "body": _first(form, "Body") or "",
            "date_created": stamp, "date_sent": None, "date_updated": stamp, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": _first(form, "From"),
            "messaging_service_sid": _first(form, "MessagingServiceSid"), "num_media": str(len(media)),
            "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid, "status": _message_status(form),
            "subresource_uris": {"media": f"{uri}/Media.json"}, "to": to, "uri": f"{uri}.json",
        }  # fmt: skip
    sid = "CA" + uuid.uuid4().hex
    uri = f"/{API_VERSION}/Accounts/{account}/Calls/{sid}"
    sender = _first(form, "From")
    return {
        "account_sid": account, "annotation": None, "answered_by": None, "api_version": API_VERSION,
        "caller_name": None, "date_created": stamp, "date_updated": stamp, "direction": "outbound-api",
        "duration": None, "end_time": None, "forwarded_from": None, "from": sender, "from_formatted": sender,
        "group_sid": None, "parent_call_sid": None, "phone_number_sid": None, "price": None,
        "price_unit": "USD", "queue_time": "0", "sid": sid, "start_time": None, "status": "queued",
        "subresource_uris": {"notifications": f"{uri}/Notifications.json", "recordings": f"{uri}/Recordings.json"},
        "to": to, "to_formatted": to, "trunk_sid": None, "uri": f"{uri}.json",
    }  # fmt: skip


class FakeTwilio:
    def __init__(
        self,
        latency: float = 0.0,
        port: int = 0,
        host: str = "127.0.0.1",
        accounts: dict[str, str] | None = None,
        auto_callbacks: list[str] | None = None,
        send_delay: float = DEFAULT_SEND_DELAY,
    ) -> None:
        self.host, self.port, self.latency = host, port, latency
        self.send_delay = send_delay
        self.concurrency_limit: int | None = None
        self.concurrency_retry_after: tuple[float, bool] | None = None
        self.auto_callbacks = list(auto_callbacks) if auto_callbacks else None
        self._accounts = (
            dict(accounts) if accounts is not None else {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}
        )
        self._api_keys: dict[str, tuple[str, str]] = {}
        self._services: dict[str, str] = {DEFAULT_VERIFY_SERVICE_SID: DEFAULT_ACCOUNT_SID}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, int] = {}
        self._clear()

    def _clear(self) -> None:
        self._records: dict[str, _Record] = {}
        self._order: list[_Record] = []
        self._verifications: dict[str, dict[str, Any]] = {}
        self._pending: dict[tuple[str, str], str] = {}
        # (account, sender or Messaging Service, recipient) opted out by an inbound keyword
        self._opted_out: set[tuple[str, str, str]] = set()
        self._faults: list[Fault] = []
        self._ratio: Fault | None = None
        self._ratio_value = 0.0
        self._create_times: list[CreateTime] = []
        self._peak = {account: n for account, n in self._in_flight.items() if n}
        self.requests_total = 0
        self.create_attempts = 0
        self.throttled_total = 0

    # lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("FakeTwilio already started")
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop: asyncio.AbstractEventLoop
            try:
                import uvloop

                loop = uvloop.new_event_loop()
            except ImportError:
                loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except Exception as exc:  # noqa: BLE001 - re-raised by start()
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-twilio", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread = None
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application()
        app.add_routes(self._routes())
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=4096, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _routes(self) -> list[web.RouteDef]:
        base = f"/{API_VERSION}/Accounts/{{account}}/{{kind:Messages|Calls}}"
        return [
            web.post(f"{base}.json", self._api(self._create)),
            web.get(f"{base}.json", self._api(self._list)),
            web.get(f"{base}/{{sid}}.json", self._api(self._fetch)),
            web.get(f"/{API_VERSION}/Accounts/{{account}}.json", self._api(self._fetch_account)),
            web.post("/v2/Services/{service}/Verifications", self._api(self._start_verification)),
            web.get(
                "/v2/Services/{service}/Verifications/{sid}", self._api(self._fetch_verification)
            ),
            web.route("*", "/v2/{tail:.*}", self._api(self._not_found)),
            web.post("/_fake/callbacks", self._http_callbacks),
            web.post("/_fake/{op}", self._http_control),
            web.get("/_fake/{what:stats|messages|calls}", self._http_inspect),
            web.route("*", f"/{API_VERSION}/{{tail:.*}}", self._api(self._not_found)),
        ]

    # configuration and fault injection

    def add_account(self, sid: str, token: str) -> None:
        with self._lock:
            self._accounts[sid] = token

    def add_api_key(
        self, key_sid: str, secret: str, account_sid: str = DEFAULT_ACCOUNT_SID
    ) -> None:
        with self._lock:
            self._api_keys[key_sid] = (secret, account_sid)

    def add_service(self, sid: str, account_sid: str = DEFAULT_ACCOUNT_SID) -> None:
        """A Verify service of the account."""
        with self._lock:
            self._services[sid] = account_sid

    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def set_auto_callbacks(self, statuses: list[str] | None) -> None:
        self.auto_callbacks = list(statuses) if statuses else None

    def set_send_delay(self, seconds: float) -> None:
        """How long a new message stays queued (`date_sent` null) before it counts as sent."""
        self.send_delay = seconds

    def set_concurrency_limit(
        self, limit: int | None, retry_after: float | None = None, retry_after_date: bool = False
    ) -> None:
        """Answer 429 (20429) to a request that finds `limit` requests of its account in flight,
        as Twilio's account concurrency limit does; no `Retry-After` unless given here."""
        with self._lock:
            self.concurrency_limit = limit
            self.concurrency_retry_after = (
                None if retry_after is None else (retry_after, retry_after_date)
            )

    def add_fault(
        self,
        status: int,
        count: int = 1,
        match_to: str | None = None,
        retry_after: float | None = None,
        code: int | None = None,
        message: str | None = None,
        create_anyway: bool = False,
        delay: float | None = None,
        kind: Kind | None = None,
        retry_after_date: bool = False,
    ) -> None:
        code, message = _resolve_error(status, code, message)
        fault = Fault(
            status,
            count,
            code,
            message,
            match_to,
            retry_after,
            create_anyway,
            delay,
            kind,
            retry_after_date,
        )
        with self._lock:
            self._faults.append(fault)

    def fail_ratio(self, status: int, ratio: float, retry_after: float | None = None) -> None:
        code, message = _resolve_error(status, None, None)
        with self._lock:
            self._ratio = (
                Fault(status, 0, code, message, retry_after=retry_after) if ratio > 0 else None
            )
            self._ratio_value = ratio

    def reset(self) -> None:
        with self._lock:
            self._clear()
            self.send_delay = DEFAULT_SEND_DELAY
            self.concurrency_limit = None
            self.concurrency_retry_after = None

    # inspection

    def _resources(self, kind: str) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            for record in self._order:
                record.advance(now)
            return [dict(r.resource) for r in self._order if r.kind == kind]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._resources("Messages")

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self._resources("Calls")

    @property
    def verifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(v)) for v in self._verifications.values()]

    @property
    def verification_sends(self) -> int:
        """Codes sent: every start that reached a verification (a first one or a resend)."""
        with self._lock:
            return sum(len(v["send_code_attempts"]) for v in self._verifications.values())

    @property
    def created_count(self) -> int:
        return len(self._order)

    @property
    def create_times(self) -> list[CreateTime]:
        with self._lock:
            return list(self._create_times)

    @property
    def peak_in_flight(self) -> dict[str, int]:
        with self._lock:
            return dict(self._peak)

    @property
    def in_flight_now(self) -> dict[str, int]:
        with self._lock:
            return {account: n for account, n in self._in_flight.items() if n}

    def count_by(self, kind: Kind = "Messages", **fields: Any) -> int:
        wanted = {("from" if key == "from_" else key): value for key, value in fields.items()}
        return sum(all(r.get(k) == v for k, v in wanted.items()) for r in self._resources(kind))

    def max_per_window(self, sender: str, window: float = 1.0) -> int:
        return _max_in_window([t for t, _, s, _ in self.create_times if s == sender], window)

    def stats(self, window: float = 1.0) -> dict[str, Any]:
        times = self.create_times
        return {
            "requests_total": self.requests_total,
            "create_attempts": self.create_attempts,
            "throttled_total": self.throttled_total,
            "created_count": self.created_count,
            "messages_count": len(self.messages),
            "calls_count": len(self.calls),
            "verification_sends": self.verification_sends,
            "peak_in_flight": self.peak_in_flight,
            "in_flight_now": self.in_flight_now,
            "latency": self.latency,
            "max_per_window": {
                s: _max_in_window([t[0] for t in times if t[2] == s], window)
                for s in {t[2] for t in times}
            },
            "create_times": times,
        }

    # API handlers

    @staticmethod
    def _api(
        handler: Callable[[web.Request], Awaitable[web.Response]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except ApiError as error:
                return error.response()

        return wrapped

    async def _not_found(self, request: web.Request) -> web.Response:
        raise ApiError(404, 20404, f"The requested resource {request.path} was not found")

    def _authenticate(self, request: web.Request, account: str) -> None:
        token = self._accounts.get(account)
        if token is None:
            raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
        user, password = _basic_auth(request.headers.get("Authorization", ""))
        if user == account and password == token:
            return
        if user.startswith("SK") and self._api_keys.get(user) == (password, account):
            return
        raise ApiError(401, 20003, "Authenticate")

    @contextlib.contextmanager
    def _in_flight_slot(self, account: str) -> Iterator[None]:
        """Count a request of the account as in flight; over the concurrency limit, 429."""
        with self._lock:
            now = self._in_flight.get(account, 0)
            if self.concurrency_limit is not None and now >= self.concurrency_limit:
                self.throttled_total += 1
                after = self.concurrency_retry_after
                header = retry_after_header(*after) if after else None
                raise ApiError(429, 20429, "Too Many Requests", header)
            self._in_flight[account] = now + 1
            self._peak[account] = max(now + 1, self._peak.get(account, 0))
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[account] -= 1

    def _take_fault(self, kind: str, to: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.kind in (None, kind)) and (fault.match_to in (None, to)):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
            if self._ratio is not None and random.random() < self._ratio_value:
                return self._ratio
        return None

    def _store(self, kind: str, account: str, form: Form) -> _Record:
        _validate(kind, form)
        to = _first(form, "To") or ""
        for scope in (_first(form, "From"), _first(form, "MessagingServiceSid")):
            if kind == "Messages" and scope and (account, scope, to) in self._opted_out:
                raise ApiError(400, 21610, _CODE_MESSAGES[21610])
        now = datetime.now(UTC)
        resource = _build_resource(kind, account, form, now)
        sends_at = now.timestamp() + self.send_delay
        if resource["status"] == "scheduled":
            with contextlib.suppress(ValueError, TypeError):
                moment = datetime.fromisoformat(str(_first(form, "SendAt")).replace("Z", "+00:00"))
                sends_at = max(sends_at, moment.timestamp())
        record = _Record(
            kind,
            account,
            resource,
            now,
            _first(form, "StatusCallback"),
            sends_at,
            _call_events(form),
        )
        sender = _first(form, "From") or _first(form, "MessagingServiceSid") or ""
        with self._lock:
            self._records[record.resource["sid"]] = record
            self._order.append(record)
            self._create_times.append((time.monotonic(), account, sender, kind))
        if record.status_callback and self.auto_callbacks:
            task = asyncio.get_running_loop().create_task(
                self._auto_callbacks(record, list(self.auto_callbacks))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return record

    async def _create(self, request: web.Request) -> web.Response:
        account, kind = request.match_info["account"], request.match_info["kind"]
        self.requests_total += 1
        self.create_attempts += 1
        self._authenticate(request, account)
        form = _parse_form(await request.read())
        with self._in_flight_slot(account):
            fault = self._take_fault(kind, _first(form, "To"))
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if fault is None:
                return _json(self._store(kind, account, form).resource, 201)
            if fault.create_anyway:
                self._store(kind, account, form)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            raise fault.error()

    async def _fetch(self, request: web.Request) -> web.Response:
        account, kind = request.match_info["account"], request.match_info["kind"]
        self.requests_total += 1
        self._authenticate(request, account)
        with self._in_flight_slot(account):
            if self.latency > 0:
                await asyncio.sleep(self.latency)
        record = self._records.get(request.match_info["sid"])
        if record is None or record.kind != kind or record.account_sid != account:
            raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
        with self._lock:
            record.advance(time.time())
            return _json(record.resource)

    # Verify v2

    def _verify_account(self, request: web.Request) -> str:
        """The service's account, authenticated as the 2010 API authenticates it."""
        service = request.match_info["service"]
        user, _ = _basic_auth(request.headers.get("Authorization", ""))
        owner = self._services.get(service)
        account = owner or (
            self._api_keys.get(user, ("", ""))[1] if user.startswith("SK") else user
        )
        if account not in self._accounts:
            raise ApiError(401, 20003, "Authenticate")
        self._authenticate(request, account)
        if owner is None:
            raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
        return account

    def _expire(self, now: float) -> None:
        for key, sid in list(self._pending.items()):
            verification = self._verifications[sid]
            if now - verification["_created"] >= VERIFY_LIFETIME:
                verification.update(status="expired", date_updated=_iso(now))
                del self._pending[key]

    async def _start_verification(self, request: web.Request) -> web.Response:
        service = request.match_info["service"]
        self.requests_total += 1
        self.create_attempts += 1
        account = self._verify_account(request)
        form = _parse_form(await request.read())
        to, channel = _first(form, "To"), _first(form, "Channel")
        with self._in_flight_slot(account):
            fault = self._take_fault("Verifications", to)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if fault is not None and not fault.create_anyway:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                raise fault.error()
            resource = self._store_verification(account, service, form, to, channel)
            if fault is not None:
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                raise fault.error()
            return _json(resource, 201)

    def _store_verification(
        self, account: str, service: str, form: Form, to: str | None, channel: str | None
    ) -> dict[str, Any]:
        if not to:
            raise ApiError(400, 60200, "Missing required parameter To in the post body")
        if not channel:
            raise ApiError(400, 60200, "Missing required parameter Channel in the post body")
        if channel not in VERIFY_CHANNELS:
            raise ApiError(400, 60200, "Invalid parameter: Channel")
        if channel == "email" and "@" not in to:
            raise ApiError(400, 60200, f"Invalid parameter `To`: {to}")
        if channel != "email" and not (to.startswith("+") and _possible_number(to)):
            raise ApiError(400, 60200, f"Invalid parameter `To`: {to}")
        now = time.time()
        with self._lock:
            self._expire(now)
            sid = self._pending.get((service, to))
            verification = self._verifications.get(sid) if sid else None
            if verification is None:
                sid = "VE" + uuid.uuid4().hex
                verification = {
                    "sid": sid, "service_sid": service, "account_sid": account, "to": to,
                    "channel": channel, "status": "pending", "valid": False,
                    "date_created": _iso(now), "date_updated": _iso(now),
                    "lookup": {"carrier": None}, "amount": None, "payee": None,
                    "send_code_attempts": [], "sna": None,
                    "url": f"https://verify.twilio.com/v2/Services/{service}/Verifications/{sid}",
                    "_created": now,
                }  # fmt: skip
                self._verifications[sid] = verification
                self._pending[(service, to)] = sid
            attempts = verification["send_code_attempts"]
            if len(attempts) >= VERIFY_MAX_SENDS:
                raise ApiError(429, 60203, "Max send attempts reached")
            attempts.append(
                {"attempt_sid": "VL" + uuid.uuid4().hex, "channel": channel, "time": _iso(now)}
            )
            verification.update(channel=channel, date_updated=_iso(now))
            self._create_times.append(
                (time.monotonic(), account, f"service:{service}", "Verifications")
            )
            return {k: v for k, v in verification.items() if not k.startswith("_")}

    async def _fetch_verification(self, request: web.Request) -> web.Response:
        service, key = request.match_info["service"], request.match_info["sid"]
        self.requests_total += 1
        account = self._verify_account(request)
        with self._in_flight_slot(account):
            if self.latency > 0:
                await asyncio.sleep(self.latency)
        with self._lock:
            self._expire(time.time())
            sid = key if key.startswith("VE") else self._pending.get((service, key))
            verification = self._verifications.get(sid or "")
            if verification is None or verification["service_sid"] != service:
                raise ApiError(404, 20404, f"The requested resource {request.path} was not found")
            return _json({k: v for k, v in verification.items() if not k.startswith("_")})

    async def _fetch_account(self, request: web.Request) -> web.Response:
        """Twilio's Account resource, as `GET /2010-04-01/Accounts/{sid}.json` returns it."""
        account = request.match_info["account"]
        self.requests_total += 1
        self._authenticate(request, account)
        stamp = _rfc2822(int(time.time()))
        return _json({
            "sid": account, "owner_account_sid": account, "friendly_name": f"{account} fake",
            "status": "active", "type": "Full", "auth_token": self._accounts[account],
            "date_created": stamp, "date_updated": stamp,
            "uri": f"/{API_VERSION}/Accounts/{account}.json",
            "subresource_uris": {"messages": f"/{API_VERSION}/Accounts/{account}/Messages.json",
                                 "calls": f"/{API_VERSION}/Accounts/{account}/Calls.json"},
        })  # fmt: skip

    async def _list(self, request: web.Request) -> web.Response:
        account, kind = request.match_info["account"], request.match_info["kind"]
        self.requests_total += 1
        self._authenticate(request, account)
        with self._in_flight_slot(account):
            if self.latency > 0:
                await asyncio.sleep(self.latency)
        query = request.query
        field = "DateSent" if kind == "Messages" else "StartTime"
        checks = [
            _time_filter(field + suffix, query[field + suffix], op)
            for suffix, op in (("", operator.eq), (">", operator.ge), ("<", operator.le))
            if query.get(field + suffix)
        ]
        to, sender = query.get("To"), query.get("From")
        now = time.time()
        with self._lock:
            candidates = []
            for r in self._order:
                if r.kind == kind and r.account_sid == account:
                    r.advance(now)
                    candidates.append(r)
            # Newest first. The sent date is computed under the lock: `advance` writes it.
            matching = [
                r
                for r in sorted(candidates, key=lambda r: r.created, reverse=True)
                if to in (None, r.resource["to"])
                and sender in (None, r.resource["from"])
                and all(c(r.sent) for c in checks)
            ]
        try:
            size = min(MAX_PAGE_SIZE, max(1, int(query.get("PageSize", 50))))
            page = max(0, int(query.get("Page", 0)))
        except ValueError:
            raise ApiError(400, 20001, "Invalid paging parameters") from None
        rest = [(k, v) for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")]

        def page_uri(n: int) -> str:
            return f"{request.path}?{urlencode([*rest, ('PageSize', size), ('Page', n)])}"

        chunk = matching[page * size : (page + 1) * size]
        with self._lock:
            page_resources = [dict(r.resource) for r in chunk]
        return _json({
            kind.lower(): page_resources,
            "end": page * size + len(chunk) - 1,
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if (page + 1) * size < len(matching) else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": page * size,
            "uri": page_uri(page),
        })  # fmt: skip

    # status callbacks

    def _callback_params(self, record: _Record, status: str) -> dict[str, str]:
        resource = record.resource
        stamp = _rfc2822(int(time.time()))
        resource.update(status=status, date_updated=stamp)
        common = {
            "AccountSid": record.account_sid,
            "From": resource["from"],
            "To": resource["to"],
            "ApiVersion": API_VERSION,
        }
        if record.kind == "Calls":
            return {"CallSid": resource["sid"], "CallStatus": status, **common}
        if status in ("sent", "delivered") and resource["date_sent"] is None:
            resource["date_sent"] = stamp
        params = {
            "MessageSid": resource["sid"],
            "MessageStatus": status,
            "SmsSid": resource["sid"],
            "SmsStatus": status,
            **common,
        }
        if resource["messaging_service_sid"]:
            params["MessagingServiceSid"] = resource["messaging_service_sid"]
        if status in _CALLBACK_ERROR_CODES:
            params["ErrorCode"] = _CALLBACK_ERROR_CODES[status]
            resource["error_code"] = int(_CALLBACK_ERROR_CODES[status])
        return params

    async def asend_status_callbacks(
        self, sid: str, statuses: list[str], account_token: str | None = None, sign: bool = True
    ) -> list[int]:
        record = self._records.get(sid)
        if record is None:
            raise KeyError(sid)
        url = record.status_callback
        if not url:
            raise ValueError(f"{sid} has no StatusCallback")
        validator = RequestValidator(account_token or self._accounts[record.account_sid])
        assert self._session is not None
        codes = []
        for status in statuses:
            if record.kind == "Calls" and CALL_EVENTS.get(status, "completed") not in record.events:
                continue  # Twilio calls back only for the events the create asked for
            params = self._callback_params(record, status)
            headers = {"User-Agent": "TwilioProxy/1.1"}
            if sign:
                headers["X-Twilio-Signature"] = validator.compute_signature(url, params)
            try:
                async with self._session.post(url, data=params, headers=headers) as response:
                    await response.read()
                    codes.append(response.status)
            except (TimeoutError, aiohttp.ClientError):
                codes.append(0)
        return codes

    def send_status_callbacks(
        self, sid: str, statuses: list[str], account_token: str | None = None, sign: bool = True
    ) -> list[int]:
        if self._loop is None or self._thread is None:
            raise RuntimeError("FakeTwilio is not running")
        coro = self.asend_status_callbacks(sid, statuses, account_token, sign)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    async def asend_inbound(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        messaging_service_sid: str | None = None,
        account_token: str | None = None,
        sign: bool = True,
        signed_url: str | None = None,
        message_sid: str | None = None,
    ) -> tuple[int, str]:
        """POST an incoming message to `url` as Twilio posts it to a number's (or Messaging
        Service's) incoming-message webhook: a form signed with the account's token over
        `signed_url` (the URL Twilio was given; default `url`). Returns (status, body)."""
        sid = message_sid or "SM" + uuid.uuid4().hex
        params = {
            "ToCountry": "US",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "SmsSid": sid,
            "SmsStatus": "received",
            "Body": body,
            "FromCountry": "US",
            "To": to,
            "NumSegments": "1",
            "MessageSid": sid,
            "AccountSid": account_sid,
            "From": from_,
            "ApiVersion": "2010-04-01",
        }
        if messaging_service_sid:
            params["MessagingServiceSid"] = messaging_service_sid
        # Twilio itself blocks the sender (or the whole service) after an opt-out keyword and
        # lifts it after an opt-in one, and still forwards the message (TWILIO.md).
        # A forged message (unsigned, or not with the account's token) never went through Twilio.
        genuine = sign and account_token in (None, self._accounts.get(account_sid))
        word, held = body.strip().upper(), (account_sid, messaging_service_sid or to, from_)
        with self._lock:
            if genuine and word in OPT_OUT_KEYWORDS:
                self._opted_out.add(held)
            elif genuine and word in OPT_IN_KEYWORDS:
                self._opted_out.discard(held)
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if sign:
            token = account_token or self._accounts[account_sid]
            validator = RequestValidator(token)
            headers["X-Twilio-Signature"] = validator.compute_signature(signed_url or url, params)
        assert self._session is not None
        async with self._session.post(url, data=params, headers=headers) as response:
            return response.status, await response.text()

    def send_inbound(self, url: str, from_: str, to: str, body: str, **kw: Any) -> tuple[int, str]:
        if self._loop is None or self._thread is None:
            raise RuntimeError("FakeTwilio is not running")
        coro = self.asend_inbound(url, from_, to, body, **kw)
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    async def _auto_callbacks(self, record: _Record, statuses: list[str]) -> None:
        for status in statuses:
            await asyncio.sleep(AUTO_CALLBACK_STEP)
            try:
                await self.asend_status_callbacks(record.resource["sid"], [status])
            except (KeyError, ValueError):
                return

    # HTTP control (subprocess mode)

    async def _http_control(self, request: web.Request) -> web.Response:
        op = "add_fault" if request.match_info["op"] == "faults" else request.match_info["op"]
        if op not in _CONTROL_OPS:
            return _json({"error": f"unknown operation {op}"}, 404)
        try:
            kwargs = await request.json() if request.can_read_body else {}
            getattr(self, op)(**kwargs)
        except (TypeError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"ok": True})

    async def _http_inspect(self, request: web.Request) -> web.Response:
        what = request.match_info["what"]
        if what == "stats":
            return _json(self.stats(float(request.query.get("window", 1.0))))
        return _json(self.messages if what == "messages" else self.calls)

    async def _http_callbacks(self, request: web.Request) -> web.Response:
        try:
            codes = await self.asend_status_callbacks(**await request.json())
        except (TypeError, ValueError, KeyError) as exc:
            return _json({"error": repr(exc)}, 400)
        return _json({"codes": codes})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_twilio", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--account", action="append", default=[], metavar="SID:TOKEN")
    parser.add_argument("--auto-callbacks", default="", metavar="STATUS,STATUS")
    parser.add_argument(
        "--send-delay", type=float, default=DEFAULT_SEND_DELAY,
        help="seconds a message stays queued (date_sent null) before it is sent",
    )  # fmt: skip
    parser.add_argument("--concurrency-limit", type=int, default=None)
    args = parser.parse_args(argv)
    accounts = {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN}
    for item in args.account:
        sid, _, token = item.partition(":")
        if not sid or not token:
            parser.error(f"--account expects SID:TOKEN, got {item!r}")
        accounts[sid] = token
    auto = [s for s in args.auto_callbacks.split(",") if s] or None
    fake = FakeTwilio(args.latency, args.port, args.host, accounts, auto, args.send_delay).start()
    fake.set_concurrency_limit(args.concurrency_limit)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    print(f"listening on {fake.url}", flush=True)
    while not stopping.wait(1.0):
        pass
    fake.stop()


if __name__ == "__main__":
    main()
