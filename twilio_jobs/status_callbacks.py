"""Twilio status callbacks: the URL the worker gives Twilio, and what the API does when Twilio
calls it.

The URL carries a token (an HMAC of the job id under TWILIO_JOBS_SECRET_KEY), so only the URL
we handed Twilio is accepted. When the job's account is the server's default account, the
request must also carry a valid `X-Twilio-Signature`, checked by twilio-python's own
`RequestValidator` (injected by the API, `SignatureCheck`): of the URL and the form's
parameters, or of the URL alone for a JSON body, whose SHA-256 the URL carries as
`bodySHA256`. Other accounts' tokens are not kept once a job ends, so for them the token is the
proof. A status update and its `delivery.<status>` webhook event are written in one step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from redis import Redis

from twilio_jobs import keys, scripts
from twilio_jobs.crypto import Cipher
from twilio_jobs.errors import Forbidden, InvalidRequest, JobNotFound
from twilio_jobs.schemas import JobKind
from twilio_jobs.settings import Settings
from twilio_jobs.store import now_iso
from twilio_jobs.twilio.endpoints import endpoint

log = logging.getLogger("twilio_jobs.status")

ROUTE = "/api/twilio/status/{job_id}"

# Later states outrank earlier ones; a callback never moves a job's deliveryStatus backwards.
MESSAGE_RANKS = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "canceled": 3,
    "partially_delivered": 3,
    "read": 4,  # WhatsApp and RCS report it after delivered
}
CALL_RANKS = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "completed": 4,
    "busy": 4,
    "failed": 4,
    "no-answer": 4,
    "canceled": 4,
}
ERROR_STATES = frozenset({"failed", "undelivered"})


def callback_token(cipher: Cipher, job_id: str) -> str:
    return cipher.sign(f"status-callback:{job_id}")


def status_callback_url(settings: Settings, cipher: Cipher, job_id: str) -> str | None:
    if not settings.public_url:
        return None
    path = ROUTE.format(job_id=job_id)
    return f"{settings.public_url.rstrip('/')}{path}?token={callback_token(cipher, job_id)}"


def with_status_callback(
    params: Mapping[str, Any],
    job_id: str,
    settings: Settings,
    cipher: Cipher,
    kind: JobKind = JobKind.sendSms,
) -> Mapping[str, Any]:
    """The create parameters plus our StatusCallback, unless the caller set their own or the
    endpoint takes none (`Endpoint.callback_field`). For a call, also every progress event
    (Twilio sends `completed` alone when none are asked for), so `deliveryStatus` moves
    through them as CALL_RANKS promise."""
    spec = endpoint(kind)
    field = spec.callback_field
    if field is None or field in params:
        return params
    url = status_callback_url(settings, cipher, job_id)
    if not url:
        return params
    if spec.callback_events and f"{field}Event" not in params:
        return {**params, field: url, f"{field}Event": list(spec.callback_events)}
    return {**params, field: url}


SignatureCheck = Callable[[str, list[tuple[str, str]] | str, str, str | None], bool]
"""Whether Twilio signed a request: (the URL it requested, the form's pairs or a JSON body as
text, the auth token, `X-Twilio-Signature`). The API passes twilio-python's `RequestValidator`
(`producer.twilio_signatures`): this package does not import twilio."""


def _refuse(url: str, params: list[tuple[str, str]] | str, token: str, sig: str | None) -> bool:
    return False


class StatusCallbacks:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        cipher: Cipher,
        signed_by_twilio: SignatureCheck = _refuse,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.cipher = cipher
        self.signed_by_twilio = signed_by_twilio
        self._update = scripts.register(redis, "delivery_status")

    def public_url(self, job_id: str, query: str, fallback: str) -> str:
        """The URL Twilio was given (and signed), whatever proxies did to the request."""
        if not self.settings.public_url:
            return fallback
        path = ROUTE.format(job_id=job_id)
        return f"{self.settings.public_url.rstrip('/')}{path}" + (f"?{query}" if query else "")

    def accept(
        self,
        job_id: str,
        token: str | None,
        body: bytes,
        content_type: str,
        signature: str | None,
        url: str,
    ) -> str:
        """Apply one callback (a form, or a JSON object signed with `bodySHA256` in the URL).
        Returns `updated`, `stale` or `ignored`; raises Forbidden for a callback that is not
        from Twilio for this job, having changed nothing."""
        if not token or not self.cipher.verify(f"status-callback:{job_id}", token):
            raise Forbidden("Invalid status callback token")
        kind, account_sid = self.redis.hmget(keys.job(job_id), ["kind", "accountSid"])
        if not kind:
            raise JobNotFound(job_id)
        signed, params = _parse(body, content_type)
        if params.get("AccountSid", account_sid) != account_sid:
            raise Forbidden("Status callback is for another account")
        default_token = self.settings.twilio_auth_token
        if default_token is not None and account_sid == self.settings.twilio_account_sid:
            secret = default_token.get_secret_value()
            if not self.signed_by_twilio(url, signed, secret, signature):
                raise Forbidden("Invalid X-Twilio-Signature")
        is_call = kind == JobKind.makeCall.value
        status = params.get("CallStatus") if is_call else params.get("MessageStatus")
        status = status or params.get("SmsStatus")
        if not status:
            raise InvalidRequest("A status callback needs MessageStatus or CallStatus")
        rank = (CALL_RANKS if is_call else MESSAGE_RANKS).get(status)
        if rank is None:
            log.info("job %s: ignored unknown status %r", job_id, status)
            return "ignored"
        code = params.get("ErrorCode", "")
        code = code if status in ERROR_STATES and code.isdigit() else ""
        sid = params.get("CallSid" if is_call else "MessageSid", "")
        outcome = str(
            self._update(keys=[keys.job(job_id)], args=[status, rank, code, now_iso(), sid])
        )
        if outcome == "missing":
            raise JobNotFound(job_id)
        if outcome == "other":
            raise Forbidden("Status callback is for another message or call")
        if outcome == "stale":
            return "stale"
        return "updated"


def _parse(body: bytes, content_type: str) -> tuple[list[tuple[str, str]] | str, dict[str, str]]:
    """What Twilio signed (the form's pairs, or the JSON body's text) and the parameters."""
    text = body.decode("utf-8", "replace")
    if content_type.split(";")[0].strip().lower() != "application/json":
        form = parse_qsl(text, keep_blank_values=True)
        return form, dict(form)
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidRequest("A JSON status callback must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidRequest("A JSON status callback must be a JSON object")
    return text, {str(k): str(v) for k, v in data.items() if isinstance(v, str | int | float)}
