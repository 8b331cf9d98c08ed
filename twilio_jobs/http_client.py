"""The HTTP API from Python, for web apps that should hold neither Redis access nor the secret
key: the same operations as `Client`, over httpx, sync and async alike, answering with the same
records (`twilio_jobs.schemas`), so code can move from one client to the other.

    from twilio_jobs import HttpClient
    with HttpClient("https://jobs.example.com", api_key="...") as jobs:
        accepted = jobs.send_sms(account_sid="AC...", account_token="...", from_="+1500...",
                                 to="+14155550100", body="hi")
        record = jobs.wait(accepted.jobId, timeout=10)   # a JobRecord

Each operation is described once, as a `Call` (the request and how its answer is read), and
both clients run it. An error answer (the error envelope) is raised as the class of the error
tree its status stands for, with the server's message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel

from twilio_jobs import errors
from twilio_jobs.lifecycle import JobStatus
from twilio_jobs.schemas import (
    Accepted,
    CampaignAccepted,
    CampaignJobs,
    CampaignPage,
    CampaignStatus,
    FailedDelivery,
    JobKind,
    JobPage,
    JobRecord,
    Suppression,
    SuppressionPage,
)
from twilio_jobs.submission import camel, snake_to_camel

T = TypeVar("T")

ERRORS: Mapping[int, type[errors.TwilioJobsError]] = {
    400: errors.InvalidRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.JobNotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    503: errors.ServiceUnavailable,
}

WAIT_STEP = 60.0
"""The longest `?wait=` one request asks for (the server's TWILIO_JOBS_MAX_WAIT default)."""


# Answers that wrap a list or a count, read down to it.
class FailedDeliveries(BaseModel):
    deliveries: list[FailedDelivery]

    @classmethod
    def read(cls, raw: bytes) -> list[FailedDelivery]:
        return cls.model_validate_json(raw).deliveries


class Imported(BaseModel):
    imported: int

    @classmethod
    def read(cls, raw: bytes) -> int:
        return cls.model_validate_json(raw).imported


class Lifted(BaseModel):
    lifted: int

    @classmethod
    def read(cls, raw: bytes) -> int:
        return cls.model_validate_json(raw).lifted


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API and how its answer is read, described once for both clients."""

    method: str
    path: str
    read: Callable[[bytes], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    """A raw body (a CSV import), sent instead of `json`."""
    missing: type[errors.TwilioJobsError] = errors.JobNotFound
    """What a 404 stands for."""


def raise_for(
    response: httpx.Response, missing: type[errors.TwilioJobsError] = errors.JobNotFound
) -> None:
    """The error envelope's message as an error of the tree; nothing for a success."""
    if response.status_code < 400:
        return
    try:
        message = str(response.json()["contextWrites"]["to"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    cls = missing if response.status_code == 404 else ERRORS.get(response.status_code)
    cls = cls or errors.TwilioJobsError
    error = cls.__new__(cls)
    errors.TwilioJobsError.__init__(error, message)
    raise error


def _body(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in camel(fields).items() if v is not None}


def send_call(
    kind: JobKind, fields: Mapping[str, Any], idempotency_key: str | None
) -> Call[Accepted]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call(
        "POST",
        f"/api/twilio/{kind.value}",
        Accepted.model_validate_json,
        json=_body(fields),
        headers=headers,
    )


def get_call(job_id: str, wait: float = 0.0) -> Call[JobRecord]:
    params = {"wait": wait} if wait else {}
    return Call("GET", f"/api/jobs/{job_id}", JobRecord.model_validate_json, params=params)


def cancel_call(job_id: str) -> Call[JobRecord]:
    return Call("DELETE", f"/api/jobs/{job_id}", JobRecord.model_validate_json)


def retry_call(job_id: str, account_token: str | None) -> Call[JobRecord]:
    body = {"accountToken": account_token} if account_token else None
    return Call("POST", f"/api/jobs/{job_id}/retry", JobRecord.model_validate_json, json=body)


def campaign_call(fields: Mapping[str, Any], dry_run: bool) -> Call[CampaignAccepted]:
    params = {"dryRun": "true"} if dry_run else {}
    return Call(
        "POST",
        "/api/campaigns",
        CampaignAccepted.model_validate_json,
        json=_body(fields),
        params=params,
    )


def campaigns_call(cursor: str | None, limit: int) -> Call[CampaignPage]:
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/api/campaigns", CampaignPage.model_validate_json, params=params)


def report_call(campaign_id: str) -> Call[str]:
    """The delivery report (`GET /api/campaigns/{id}/report.csv`) as CSV text."""
    return Call(
        "GET",
        f"/api/campaigns/{campaign_id}/report.csv",
        lambda raw: raw.decode(),
        missing=errors.CampaignNotFound,
    )


def campaign_status_call(campaign_id: str, action: str | None = None) -> Call[CampaignStatus]:
    """The dashboard (`action` None) or pause | resume | cancel, which answer with it."""
    path = f"/api/campaigns/{campaign_id}" + (f"/{action}" if action else "")
    return Call(
        "POST" if action else "GET",
        path,
        CampaignStatus.model_validate_json,
        missing=errors.CampaignNotFound,
    )


def campaign_jobs_call(
    campaign_id: str, status: JobStatus | None, cursor: int, limit: int
) -> Call[CampaignJobs]:
    params: dict[str, Any] = {"cursor": cursor, "limit": limit}
    if status is not None:
        params["status"] = JobStatus(status).value
    return Call(
        "GET",
        f"/api/campaigns/{campaign_id}/jobs",
        CampaignJobs.model_validate_json,
        params=params,
        missing=errors.CampaignNotFound,
    )


def failed_webhooks_call(limit: int) -> Call[list[FailedDelivery]]:
    return Call("GET", "/api/webhooks/failed", FailedDeliveries.read, params={"limit": limit})


def replay_webhook_call(job_id: str) -> Call[JobRecord]:
    return Call("POST", f"/api/jobs/{job_id}/webhook", JobRecord.model_validate_json)


def suppressions_call(
    account_sid: str,
    to: str | None,
    cursor: int,
    limit: int,
    sender: str | None = None,
    reason: str | None = None,
) -> Call[SuppressionPage]:
    params: dict[str, Any] = {"accountSid": account_sid, "cursor": cursor, "limit": limit}
    for name, value in (("to", to), ("sender", sender), ("reason", reason)):
        if value is not None:
            params[name] = value
    return Call("GET", "/api/suppressions", SuppressionPage.model_validate_json, params=params)


def lift_call(account_sid: str, to: str, sender: str | None) -> Call[int]:
    params = {"accountSid": account_sid, "to": to}
    if sender is not None:
        params["sender"] = sender
    return Call("DELETE", "/api/suppressions", Lifted.read, params=params)


def add_suppression_call(account_sid: str, to: str, sender: str, reason: str) -> Call[Suppression]:
    body = {"accountSid": account_sid, "to": to, "sender": sender, "reason": reason}
    return Call("POST", "/api/suppressions", Suppression.model_validate_json, json=body)


def import_call(account_sid: str, text: str) -> Call[int]:
    return Call(
        "POST",
        "/api/suppressions/import",
        Imported.read,
        params={"accountSid": account_sid},
        content=text.encode(),
        headers={"Content-Type": "text/csv"},
    )


def export_call(account_sid: str) -> Call[str]:
    return Call(
        "GET",
        "/api/suppressions/export.csv",
        lambda raw: raw.decode(),
        params={"accountSid": account_sid},
    )


def list_call(filters: Mapping[str, Any]) -> Call[JobPage]:
    """`GET /api/jobs` with the filters given (snake_case names, as `Client.list_jobs`)."""
    params = {}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        params[snake_to_camel(name)] = value
    return Call("GET", "/api/jobs", JobPage.model_validate_json, params=params)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class HttpClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.http = http or httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=timeout + WAIT_STEP
        )

    def _do(self, call: Call[T]) -> T:
        response = self.http.request(
            call.method,
            call.path,
            json=call.json,
            content=call.content,
            params=call.params,
            headers=call.headers,
        )
        raise_for(response, call.missing)
        return call.read(response.content)

    # -- sending -------------------------------------------------------------------------------

    def send(self, kind: JobKind, idempotency_key: str | None = None, **fields: Any) -> Accepted:
        return self._do(send_call(kind, fields, idempotency_key))

    def send_sms(self, **fields: Any) -> Accepted:
        return self.send(JobKind.sendSms, **fields)

    def send_mms(self, **fields: Any) -> Accepted:
        return self.send(JobKind.sendMms, **fields)

    def make_call(self, **fields: Any) -> Accepted:
        return self.send(JobKind.makeCall, **fields)

    def start_verification(self, **fields: Any) -> Accepted:
        return self.send(JobKind.startVerification, **fields)

    # -- campaigns -----------------------------------------------------------------------------

    def create_campaign(self, *, dry_run: bool = False, **fields: Any) -> CampaignAccepted:
        return self._do(campaign_call(fields, dry_run))

    def campaign_status(self, campaign_id: str) -> CampaignStatus:
        return self._do(campaign_status_call(campaign_id))

    def campaign_report(self, campaign_id: str) -> str:
        """The delivery report as CSV text, one row per recipient."""
        return self._do(report_call(campaign_id))

    def list_campaigns(self, cursor: str | None = None, limit: int = 50) -> CampaignPage:
        """The caller's campaigns, newest first, each with its status."""
        return self._do(campaigns_call(cursor, limit))

    def campaign_jobs(
        self,
        campaign_id: str,
        *,
        status: JobStatus | None = None,
        cursor: int = 0,
        limit: int = 100,
    ) -> CampaignJobs:
        return self._do(campaign_jobs_call(campaign_id, status, cursor, limit))

    def pause_campaign(self, campaign_id: str) -> CampaignStatus:
        return self._do(campaign_status_call(campaign_id, "pause"))

    def resume_campaign(self, campaign_id: str) -> CampaignStatus:
        return self._do(campaign_status_call(campaign_id, "resume"))

    def cancel_campaign(self, campaign_id: str) -> CampaignStatus:
        return self._do(campaign_status_call(campaign_id, "cancel"))

    # -- reading and managing ------------------------------------------------------------------

    def get(self, job_id: str, wait: float = 0.0) -> JobRecord:
        return self._do(get_call(job_id, wait))

    def wait(self, job_id: str, timeout: float = 30.0) -> JobRecord:
        """The record once the job is final, or as it stands when `timeout` runs out."""
        left = timeout
        while True:
            step = min(left, WAIT_STEP)
            record = self.get(job_id, wait=step)
            left -= step
            if record.status.final or left <= 0:
                return record

    def cancel(self, job_id: str) -> JobRecord:
        return self._do(cancel_call(job_id))

    def retry(self, job_id: str, account_token: str | None = None) -> JobRecord:
        return self._do(retry_call(job_id, account_token))

    def failed_webhooks(self, limit: int = 100) -> list[FailedDelivery]:
        return self._do(failed_webhooks_call(limit))

    def replay_webhook(self, job_id: str) -> JobRecord:
        return self._do(replay_webhook_call(job_id))

    def list_suppressions(
        self,
        account_sid: str,
        *,
        to: str | None = None,
        cursor: int = 0,
        limit: int = 100,
        sender: str | None = None,
        reason: str | None = None,
    ) -> SuppressionPage:
        return self._do(suppressions_call(account_sid, to, cursor, limit, sender, reason))

    def add_suppression(
        self, account_sid: str, to: str, sender: str = "*", reason: str = "manual"
    ) -> Suppression:
        return self._do(add_suppression_call(account_sid, to, sender, reason))

    def lift_suppression(self, account_sid: str, to: str, sender: str | None = None) -> int:
        return self._do(lift_call(account_sid, to, sender))

    def import_suppressions(self, account_sid: str, text: str) -> int:
        """Add the rows of a CSV (`to`, and optionally `sender`, `reason`, `at`); how many."""
        return self._do(import_call(account_sid, text))

    def export_suppressions(self, account_sid: str) -> str:
        """The account's suppressions as CSV text (`to,sender,reason,at`)."""
        return self._do(export_call(account_sid))

    def list_jobs(self, **filters: Any) -> JobPage:
        """`status=`, `to=`, `campaign_id=`, `error_code=`, `since=`, `until=` (datetimes),
        `cursor=`, `limit=`: the caller's jobs, newest first (`GET /api/jobs`)."""
        return self._do(list_call(filters))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncHttpClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.http = http or httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout + WAIT_STEP
        )

    async def _do(self, call: Call[T]) -> T:
        response = await self.http.request(
            call.method,
            call.path,
            json=call.json,
            content=call.content,
            params=call.params,
            headers=call.headers,
        )
        raise_for(response, call.missing)
        return call.read(response.content)

    # -- sending -------------------------------------------------------------------------------

    async def send(
        self, kind: JobKind, idempotency_key: str | None = None, **fields: Any
    ) -> Accepted:
        return await self._do(send_call(kind, fields, idempotency_key))

    async def send_sms(self, **fields: Any) -> Accepted:
        return await self.send(JobKind.sendSms, **fields)

    async def send_mms(self, **fields: Any) -> Accepted:
        return await self.send(JobKind.sendMms, **fields)

    async def make_call(self, **fields: Any) -> Accepted:
        return await self.send(JobKind.makeCall, **fields)

    async def start_verification(self, **fields: Any) -> Accepted:
        return await self.send(JobKind.startVerification, **fields)

    # -- campaigns -----------------------------------------------------------------------------

    async def create_campaign(self, *, dry_run: bool = False, **fields: Any) -> CampaignAccepted:
        return await self._do(campaign_call(fields, dry_run))

    async def campaign_status(self, campaign_id: str) -> CampaignStatus:
        return await self._do(campaign_status_call(campaign_id))

    async def campaign_report(self, campaign_id: str) -> str:
        return await self._do(report_call(campaign_id))

    async def list_campaigns(self, cursor: str | None = None, limit: int = 50) -> CampaignPage:
        return await self._do(campaigns_call(cursor, limit))

    async def campaign_jobs(
        self,
        campaign_id: str,
        *,
        status: JobStatus | None = None,
        cursor: int = 0,
        limit: int = 100,
    ) -> CampaignJobs:
        return await self._do(campaign_jobs_call(campaign_id, status, cursor, limit))

    async def pause_campaign(self, campaign_id: str) -> CampaignStatus:
        return await self._do(campaign_status_call(campaign_id, "pause"))

    async def resume_campaign(self, campaign_id: str) -> CampaignStatus:
        return await self._do(campaign_status_call(campaign_id, "resume"))

    async def cancel_campaign(self, campaign_id: str) -> CampaignStatus:
        return await self._do(campaign_status_call(campaign_id, "cancel"))

    # -- reading and managing ------------------------------------------------------------------

    async def get(self, job_id: str, wait: float = 0.0) -> JobRecord:
        return await self._do(get_call(job_id, wait))

    async def wait(self, job_id: str, timeout: float = 30.0) -> JobRecord:
        left = timeout
        while True:
            step = min(left, WAIT_STEP)
            record = await self.get(job_id, wait=step)
            left -= step
            if record.status.final or left <= 0:
                return record

    async def cancel(self, job_id: str) -> JobRecord:
        return await self._do(cancel_call(job_id))

    async def retry(self, job_id: str, account_token: str | None = None) -> JobRecord:
        return await self._do(retry_call(job_id, account_token))

    async def failed_webhooks(self, limit: int = 100) -> list[FailedDelivery]:
        return await self._do(failed_webhooks_call(limit))

    async def replay_webhook(self, job_id: str) -> JobRecord:
        return await self._do(replay_webhook_call(job_id))

    async def list_suppressions(
        self,
        account_sid: str,
        *,
        to: str | None = None,
        cursor: int = 0,
        limit: int = 100,
        sender: str | None = None,
        reason: str | None = None,
    ) -> SuppressionPage:
        return await self._do(suppressions_call(account_sid, to, cursor, limit, sender, reason))

    async def add_suppression(
        self, account_sid: str, to: str, sender: str = "*", reason: str = "manual"
    ) -> Suppression:
        return await self._do(add_suppression_call(account_sid, to, sender, reason))

    async def lift_suppression(self, account_sid: str, to: str, sender: str | None = None) -> int:
        return await self._do(lift_call(account_sid, to, sender))

    async def import_suppressions(self, account_sid: str, text: str) -> int:
        return await self._do(import_call(account_sid, text))

    async def export_suppressions(self, account_sid: str) -> str:
        return await self._do(export_call(account_sid))

    async def list_jobs(self, **filters: Any) -> JobPage:
        return await self._do(list_call(filters))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


__all__ = ["AsyncHttpClient", "Call", "HttpClient", "raise_for"]
