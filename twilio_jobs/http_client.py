"""The HTTP API from Python, for web apps that should hold neither Redis access nor the secret
key: the same sends and job operations as `Client`, over httpx, sync and async alike.

    from twilio_jobs import HttpClient
    with HttpClient("https://jobs.example.com", api_key="...") as jobs:
        accepted = jobs.send_sms(account_sid="AC...", account_token="...", from_="+1500...",
                                 to="+14155550100", body="hi")
        record = jobs.wait(accepted.jobId, timeout=10)   # a JobRecord

An error answer (the error envelope) is raised as the class of the error tree its status
stands for, with the server's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from twilio_jobs import errors
from twilio_jobs.schemas import Accepted, JobKind, JobPage, JobRecord
from twilio_jobs.submission import camel, snake_to_camel

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


@dataclass(frozen=True)
class Call:
    """One request of the API, described once for both transports."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def raise_for(response: httpx.Response) -> None:
    """The error envelope's message as an error of the tree; nothing for a success."""
    if response.status_code < 400:
        return
    try:
        message = str(response.json()["contextWrites"]["to"])
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}: {response.text[:200]}"
    cls = ERRORS.get(response.status_code, errors.TwilioJobsError)
    error = cls.__new__(cls)
    errors.TwilioJobsError.__init__(error, message)
    raise error


def send_call(kind: JobKind, fields: Mapping[str, Any], idempotency_key: str | None) -> Call:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    body = {k: v for k, v in camel(fields).items() if v is not None}
    return Call("POST", f"/api/twilio/{kind.value}", json=body, headers=headers)


def get_call(job_id: str, wait: float = 0.0) -> Call:
    return Call("GET", f"/api/jobs/{job_id}", params={"wait": wait} if wait else {})


def cancel_call(job_id: str) -> Call:
    return Call("DELETE", f"/api/jobs/{job_id}")


def retry_call(job_id: str, account_token: str | None) -> Call:
    body = {"accountToken": account_token} if account_token else None
    return Call("POST", f"/api/jobs/{job_id}/retry", json=body)


def list_call(filters: Mapping[str, Any]) -> Call:
    """`GET /api/jobs` with the filters given (snake_case names, as `Client.list_jobs`)."""
    params = {}
    for name, value in filters.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        params[snake_to_camel(name)] = value
    return Call("GET", "/api/jobs", params=params)


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

    def _do(self, call: Call) -> httpx.Response:
        response = self.http.request(
            call.method, call.path, json=call.json, params=call.params, headers=call.headers
        )
        raise_for(response)
        return response

    def send(self, kind: JobKind, idempotency_key: str | None = None, **fields: Any) -> Accepted:
        return Accepted.model_validate(self._do(send_call(kind, fields, idempotency_key)).json())

    def send_sms(self, **fields: Any) -> Accepted:
        return self.send(JobKind.sendSms, **fields)

    def send_mms(self, **fields: Any) -> Accepted:
        return self.send(JobKind.sendMms, **fields)

    def make_call(self, **fields: Any) -> Accepted:
        return self.send(JobKind.makeCall, **fields)

    def get(self, job_id: str, wait: float = 0.0) -> JobRecord:
        return JobRecord.model_validate(self._do(get_call(job_id, wait)).json())

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
        return JobRecord.model_validate(self._do(cancel_call(job_id)).json())

    def retry(self, job_id: str, account_token: str | None = None) -> JobRecord:
        return JobRecord.model_validate(self._do(retry_call(job_id, account_token)).json())

    def list_jobs(self, **filters: Any) -> JobPage:
        """`status=`, `to=`, `campaign_id=`, `error_code=`, `since=`, `until=` (datetimes),
        `cursor=`, `limit=`: the caller's jobs, newest first (`GET /api/jobs`)."""
        return JobPage.model_validate(self._do(list_call(filters)).json())

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

    async def _do(self, call: Call) -> httpx.Response:
        response = await self.http.request(
            call.method, call.path, json=call.json, params=call.params, headers=call.headers
        )
        raise_for(response)
        return response

    async def send(
        self, kind: JobKind, idempotency_key: str | None = None, **fields: Any
    ) -> Accepted:
        response = await self._do(send_call(kind, fields, idempotency_key))
        return Accepted.model_validate(response.json())

    async def send_sms(self, **fields: Any) -> Accepted:
        return await self.send(JobKind.sendSms, **fields)

    async def send_mms(self, **fields: Any) -> Accepted:
        return await self.send(JobKind.sendMms, **fields)

    async def make_call(self, **fields: Any) -> Accepted:
        return await self.send(JobKind.makeCall, **fields)

    async def get(self, job_id: str, wait: float = 0.0) -> JobRecord:
        return JobRecord.model_validate((await self._do(get_call(job_id, wait))).json())

    async def wait(self, job_id: str, timeout: float = 30.0) -> JobRecord:
        left = timeout
        while True:
            step = min(left, WAIT_STEP)
            record = await self.get(job_id, wait=step)
            left -= step
            if record.status.final or left <= 0:
                return record

    async def cancel(self, job_id: str) -> JobRecord:
        return JobRecord.model_validate((await self._do(cancel_call(job_id))).json())

    async def retry(self, job_id: str, account_token: str | None = None) -> JobRecord:
        call = retry_call(job_id, account_token)
        return JobRecord.model_validate((await self._do(call)).json())

    async def list_jobs(self, **filters: Any) -> JobPage:
        return JobPage.model_validate((await self._do(list_call(filters))).json())

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


__all__ = ["AsyncHttpClient", "HttpClient", "raise_for"]
