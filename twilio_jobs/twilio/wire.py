"""Twilio's wire format, without I/O: the request a call makes, and the one map from what came
back (an answer, or a transport failure) to a resource or a classified `SendError`. The sync
and the async transports send the same `Request` and hand back the same `Answer`, so both paths
classify every outcome here, in the words twilio-python would use.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from twilio_jobs.errors import (
    AmbiguousError,
    PermanentError,
    RetryableError,
    SendError,
    outcome_class,
)

FORM = "application/x-www-form-urlencoded"
CREATE_FAILED = "Unable to create record"
FETCH_FAILED = "Unable to fetch record"
PAGE_FAILED = "Unable to fetch page"
USER_AGENT = "twilio-jobs (+https://github.com/twilio-jobs/twilio-jobs)"


@dataclass(frozen=True)
class Request:
    method: str
    url: str  # absolute
    headers: Mapping[str, str]
    body: bytes | None = None
    failure: str = CREATE_FAILED  # twilio-python's words for this call failing
    final_codes: frozenset[int] = field(default=frozenset())


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Any  # a Mapping or an email.message.Message: only `.get(name)` is used


def basic_auth(account_sid: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{account_sid}:{token}".encode()).decode()


def request(
    method: str,
    url: str,
    account_sid: str,
    token: str,
    *,
    form: Mapping[str, Any] | None = None,
    query: Mapping[str, Any] | None = None,
    failure: str = CREATE_FAILED,
    final_codes: frozenset[int] = frozenset(),
) -> Request:
    """A Twilio request: HTTP basic auth with the account SID, a form body (lists repeat their
    key, as Twilio wants `StatusCallbackEvent` and `MediaUrl`), JSON back."""
    headers = {
        "Authorization": basic_auth(account_sid, token),
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    body = None
    if form is not None:
        headers["Content-Type"] = FORM
        body = urlencode(form, doseq=True).encode()
    if query:
        pairs = {k: v for k, v in query.items() if v is not None}
        url += ("&" if "?" in url else "?") + urlencode(pairs, doseq=True)
    return Request(method, url, headers, body, failure, final_codes)


def interpret(req: Request, answer: Answer) -> dict[str, Any]:
    """The resource Twilio returned, or the classified error (raised)."""
    if not 200 <= answer.status < 300:
        raise error_of(req, answer)
    try:
        resource = json.loads(answer.body)
    except ValueError:
        raise AmbiguousError("Twilio answered with a body that is not JSON") from None
    if not isinstance(resource, dict):
        raise AmbiguousError("Twilio answered with a body that is not a JSON object")
    return resource


def error_of(req: Request, answer: Answer) -> SendError:
    """An error answer as twilio-python words it (`Version.exception`): `[HTTP 400] Unable to
    create record: <Twilio's message>`, with Twilio's code (the HTTP status when the body has
    none), classified by `twilio_jobs.errors.outcome_class`."""
    message, code = req.failure, answer.status
    try:
        payload = json.loads(answer.body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        if all(k in payload for k in ("type", "title", "status", "code")):  # RFC 9457
            message = f"{message}: {payload.get('detail') or payload['title']}"
        elif "message" in payload:
            message = f"{message}: {payload['message']}"
        code = payload.get("code", answer.status)
    text = f"[HTTP {answer.status}] {message}"
    twilio_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    cls = outcome_class(answer.status, twilio_code)
    if twilio_code in req.final_codes:
        cls = PermanentError
    retry = retry_after(answer.headers) if cls is RetryableError else None
    return cls(text, status=answer.status, code=twilio_code, retry_after=retry)


def retry_after(headers: Any) -> float | None:
    """`Retry-After` in seconds (a number, or an HTTP date), or None."""
    headers = headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        return max(0.0, (moment - datetime.now(UTC)).total_seconds())


# What a transport raises when no answer came: did the request leave this machine?
def not_sent(reason: str) -> RetryableError:
    """Nothing reached Twilio (connection refused, connect timeout, DNS): safe to send again."""
    return RetryableError(f"Could not connect to Twilio: {reason}")


def read_timeout() -> AmbiguousError:
    return AmbiguousError("Twilio did not answer in time (read timeout)")


def lost_after_sending(reason: str) -> AmbiguousError:
    """The request may have reached Twilio: reconcile before sending again."""
    return AmbiguousError(f"Connection to Twilio lost after sending: {reason}")


__all__ = [
    "Answer",
    "Request",
    "basic_auth",
    "error_of",
    "interpret",
    "lost_after_sending",
    "not_sent",
    "read_timeout",
    "request",
    "retry_after",
]
