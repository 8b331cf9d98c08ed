"""One spec per Twilio endpoint a job can call: where it lives, what it takes, how a lost
answer is found again, which status-callback fields we add and which pacing lane it waits in.

A new endpoint is one `Endpoint` here plus its request model in `twilio_jobs.schemas` (and a
`JobKind` member); the route, the client methods, the worker and the transports follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from twilio_jobs.schemas import (
    CallRequest,
    JobKind,
    MmsRequest,
    SmsRequest,
    VerificationRequest,
    _SendBase,
)

Host = Literal["api", "verify"]
"""The Twilio host: `https://{host}.twilio.com` (overridable, `Settings.twilio_base_url`)."""
LaneKind = Literal["sender", "calls", "service"]
"""Which pacing lane a send waits in, besides its account's in-flight limit
(`twilio_jobs.pacing.lane`): the `From`/Messaging Service's rate, the account's calls per
second, or one unpaced lane per service (`ServiceSid`)."""
FindBy = Literal["list", "fetch"]
"""How an ambiguous create is looked for (`twilio_jobs.twilio.reconcile`): list the
resources to the recipient newest first, or fetch the one resource the recipient has."""


@dataclass(frozen=True)
class Endpoint:
    kind: JobKind
    model: type[_SendBase]
    host: Host
    # The create's path; `{account}` and `{Param}` placeholders are filled from the account SID
    # and the job's parameters (path parameters are not sent in the form).
    path: str
    # Where a lost answer is looked for: a list path (same placeholders) and the JSON key of its
    # items, or the path of the one resource the recipient has (`{To}` placeholder).
    find_by: FindBy
    find_path: str
    list_key: str = ""
    # Our status callback (`twilio_jobs.status_callbacks`): the URL field, and the events asked
    # for when the caller did not choose; no field: the endpoint takes no per-request callback.
    callback_field: str | None = "StatusCallback"
    callback_events: tuple[str, ...] = ()
    lane: LaneKind = "sender"
    # Twilio error codes that come with a retryable HTTP status but are final for this send.
    final_codes: frozenset[int] = frozenset()

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(
            part.split("}", 1)[0] for part in self.path.split("{")[1:] if part[0].isupper()
        )

    def create_path(self, account_sid: str, params: Mapping[str, Any]) -> str:
        return _fill(self.path, account_sid, params)

    def form(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The create's form: every parameter that is not in the path."""
        skip = self.path_params
        return {k: v for k, v in params.items() if k not in skip}

    def lookup_path(self, account_sid: str, params: Mapping[str, Any]) -> str:
        return _fill(self.find_path, account_sid, params)


def _fill(template: str, account_sid: str, params: Mapping[str, Any]) -> str:
    values = {k: quote(str(v), safe="") for k, v in params.items() if isinstance(v, str)}
    return template.format(account=quote(account_sid, safe=""), **values)


API = "/2010-04-01"
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")

_MESSAGES = dict(
    host="api",
    path=API + "/Accounts/{account}/Messages.json",
    find_by="list",
    find_path=API + "/Accounts/{account}/Messages.json",
    list_key="messages",
)

ENDPOINTS: dict[JobKind, Endpoint] = {
    JobKind.sendSms: Endpoint(JobKind.sendSms, SmsRequest, **_MESSAGES),  # type: ignore[arg-type]
    JobKind.sendMms: Endpoint(JobKind.sendMms, MmsRequest, **_MESSAGES),  # type: ignore[arg-type]
    JobKind.makeCall: Endpoint(
        JobKind.makeCall,
        CallRequest,
        host="api",
        path=API + "/Accounts/{account}/Calls.json",
        find_by="list",
        find_path=API + "/Accounts/{account}/Calls.json",
        list_key="calls",
        callback_events=CALL_EVENTS,
        lane="calls",
    ),
    # Twilio Verify v2: the service sends the code. A start for a `to` that already has a
    # pending verification sends the code again on the same verification (same SID), so a lost
    # answer is found by fetching the pending verification of that `to`. 60203 (max send
    # attempts reached) comes as HTTP 429 but will not pass by retrying within minutes.
    JobKind.startVerification: Endpoint(
        JobKind.startVerification,
        VerificationRequest,
        host="verify",
        path="/v2/Services/{ServiceSid}/Verifications",
        find_by="fetch",
        find_path="/v2/Services/{ServiceSid}/Verifications/{To}",
        callback_field=None,
        lane="service",
        final_codes=frozenset({60203}),
    ),
}


def endpoint(kind: JobKind | str) -> Endpoint:
    return ENDPOINTS[JobKind(kind)]


__all__ = ["API", "CALL_EVENTS", "ENDPOINTS", "Endpoint", "endpoint"]
