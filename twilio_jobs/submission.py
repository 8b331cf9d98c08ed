"""What every submission goes through, whoever submits it (the Python client, the HTTP API,
a campaign): validation, credentials, the due time, job ids and error texts."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from twilio_jobs.errors import CREDENTIALS_REQUIRED, InvalidRequest
from twilio_jobs.schemas import JobKind, _SendBase, check_twilio_rules
from twilio_jobs.settings import Settings
from twilio_jobs.twilio.endpoints import endpoint
from twilio_jobs.windows import SendWindow, WindowError, resolve

MAX_SCHEDULE_AHEAD = timedelta(days=35)


def new_job_id() -> str:
    return secrets.token_hex(16)


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line naming the first offending field, e.g. `Unknown field: foo`."""
    first = errors[0]
    loc = list(first["loc"])
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    field = ".".join(str(p) for p in loc)
    kind = first["type"]
    if kind == "json_invalid":
        return "Malformed JSON body"
    if not field:
        return (
            "Request body must be a JSON object"
            if kind != "missing"
            else "Request body is required"
        )
    if kind == "extra_forbidden":
        return f"Unknown field: {field}"
    return f"Invalid field '{field}': {first['msg']}"


def snake_to_camel(name: str) -> str:
    if name == "from_":
        return "from"
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def camel(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {snake_to_camel(k): v for k, v in fields.items()}


def validate(kind: JobKind, payload: Mapping[str, Any] | _SendBase) -> _SendBase:
    """The request model of `kind`, checked as Twilio would check it; InvalidRequest if not."""
    if isinstance(payload, _SendBase):
        request = payload
    else:
        try:
            request = endpoint(kind).model.model_validate(payload)
        except ValidationError as exc:
            raise InvalidRequest(describe_errors(exc.errors())) from None
    check_twilio_rules(kind, request)
    return request


def credentials(request: _SendBase, settings: Settings) -> tuple[str, str]:
    """The account SID and token of a request, or the server's defaults when it has none."""
    sid = request.accountSid
    token = request.accountToken
    default_sid = settings.twilio_account_sid
    default_token = settings.twilio_auth_token
    if not sid and not token and default_sid and default_token:
        return default_sid, default_token.get_secret_value()
    if sid and not token and default_token and sid == default_sid:
        return sid, default_token.get_secret_value()
    if not sid or not token:
        raise InvalidRequest(CREDENTIALS_REQUIRED)
    return sid, token


def due(send_at: datetime | None) -> float | None:
    """When a `sendAt` job is due (unix time), or None to send now."""
    if send_at is None:
        return None
    if send_at.tzinfo is None:
        send_at = send_at.replace(tzinfo=UTC)
    now = datetime.now(UTC)
    if send_at <= now:
        raise InvalidRequest("sendAt must be in the future")
    if send_at - now > MAX_SCHEDULE_AHEAD:
        raise InvalidRequest("sendAt must be at most 35 days ahead")
    return send_at.timestamp()


def send_window(kind: JobKind, request: _SendBase, settings: Settings) -> SendWindow | None:
    """The request's `sendWindow`, else the server's default (sms, mms and calls only)."""
    window: SendWindow | None = getattr(request, "sendWindow", None)
    if window is None and kind is not JobKind.startVerification:
        window = settings.default_send_window
    return window


def windowed(
    kind: JobKind, request: _SendBase, settings: Settings, due: float | None, now: float
) -> tuple[str, float | None]:
    """The job's `window` field ("" for none) and its due time with the window applied: a
    job that would be sent outside its window is due when the window next opens."""
    window = send_window(kind, request, settings)
    if window is None or not request.to:
        return "", due
    earliest = due if due is not None else now
    try:
        resolved, at = resolve(window, request.to, datetime.fromtimestamp(earliest, UTC))
    except WindowError as exc:
        raise InvalidRequest(f"Invalid field 'sendWindow.timezone': {exc}") from None
    opens = at.timestamp()  # `earliest` itself when open then (to the microsecond)
    return resolved.dumps(), (opens if opens > earliest + 0.001 else due)


__all__ = [
    "MAX_SCHEDULE_AHEAD",
    "camel",
    "credentials",
    "describe_errors",
    "due",
    "new_job_id",
    "send_window",
    "validate",
    "windowed",
]
