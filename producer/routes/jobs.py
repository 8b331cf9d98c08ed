"""Jobs: list and search them; read one (with an optional long poll), cancel it, run it again."""

import asyncio
import json
import time
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from producer.deps import ClientDep, Owner
from twilio_jobs.bulk import BulkOutcome, JobFilter
from twilio_jobs.errors import InvalidRequest
from twilio_jobs.schemas import JobPage, JobRecord, JobStatus

router = APIRouter()


@lru_cache(maxsize=8)
def _wait_bounds(max_wait: float) -> TypeAdapter[float]:
    return TypeAdapter(Annotated[float, Field(ge=0, le=max_wait)])


async def wait_seconds(request: Request, wait: Annotated[float, Query()] = 0) -> float:
    """`?wait=`: 0 to `TWILIO_JOBS_MAX_WAIT` seconds. The upper bound is a setting, so both
    bounds are checked here, by pydantic, rather than declared on the parameter: the answer is
    the one declared bounds give (the same checks in the same order), and `create_app` puts
    them in the OpenAPI document (`document_wait`)."""
    try:
        return _wait_bounds(request.app.state.settings.max_wait).validate_python(wait)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", "wait")} for e in exc.errors()]
        ) from None


def document_wait(schema: dict[str, Any], max_wait: float) -> None:
    """Show the bounds of `wait` in the OpenAPI document, as declared bounds would show."""
    for parameter in schema["paths"]["/api/jobs/{job_id}"]["get"]["parameters"]:
        if parameter["name"] == "wait" and parameter["in"] == "query":
            declared = parameter["schema"]
            parameter["schema"] = {
                "type": declared["type"],
                "maximum": max_wait,
                "minimum": 0,
                **{k: v for k, v in declared.items() if k != "type"},
            }


@router.get("/api/jobs", response_model=JobPage)
def list_jobs(
    who: Owner,
    client: ClientDep,
    status: JobStatus | None = None,
    to: Annotated[str | None, Query(max_length=64)] = None,
    campaign_id: Annotated[str | None, Query(alias="campaignId", max_length=64)] = None,
    error_code: Annotated[int | None, Query(alias="errorCode", ge=0, le=10**7)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JobPage:
    """The caller's jobs, newest first: by status, recipient (`to`, as it was sent), campaign,
    Twilio error code (of a failed job or of its delivery) and creation time (`since`,
    `until`, ISO 8601), a page at a time (`nextCursor`). A page looks at up to 2,000 jobs, so
    with several filters it may hold fewer than `limit` and still have a `nextCursor`."""
    return client.list_jobs(
        owner=who,
        status=status,
        to=to.strip() if to else None,
        campaign_id=campaign_id,
        error_code=error_code,
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )


@router.get("/api/jobs/{job_id}", response_model=JobRecord)
async def get_job(
    job_id: str,
    who: Owner,
    client: ClientDep,
    wait: Annotated[float, Depends(wait_seconds)],
) -> JobRecord:
    """The job record; with `wait=N`, holds the request up to N seconds for a final state."""
    deadline = time.monotonic() + wait
    pause = 0.02
    while True:
        record = await run_in_threadpool(client.get, job_id, owner=who)
        if record.status.final or time.monotonic() >= deadline:
            return record
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.25)


@router.delete("/api/jobs/{job_id}", response_model=JobRecord)
def cancel_job(job_id: str, who: Owner, client: ClientDep) -> JobRecord:
    """Cancel a job that has not been sent yet (scheduled, queued or waiting to retry)."""
    return client.cancel(job_id, owner=who)


@router.post("/api/jobs/{job_id}/retry", response_model=JobRecord)
async def retry_job(job_id: str, request: Request, who: Owner, client: ClientDep) -> JobRecord:
    """Run a failed job again. The auth token was dropped when it failed: send
    `{"accountToken": "..."}` unless the server holds default credentials."""
    token = None
    raw = await request.body()
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            raise InvalidRequest("Malformed JSON body") from None
        if not isinstance(body, dict) or set(body) - {"accountToken"}:
            raise InvalidRequest("The body may only hold accountToken")
        token = body.get("accountToken")
        if token is not None and not isinstance(token, str):
            raise InvalidRequest("Invalid field 'accountToken': must be a string")
    return await run_in_threadpool(client.retry, job_id, owner=who, account_token=token)


class RetryFailed(JobFilter):
    model_config = ConfigDict(extra="forbid")

    accountToken: str | None = Field(default=None, max_length=128)
    """One token for every job (tokens are dropped when a job ends), unless the server holds
    the account's."""


class CancelMatching(JobFilter):
    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    """scheduled, queued or retrying (default: all three)."""


@router.post("/api/jobs/retry", response_model=BulkOutcome)
def retry_failed_jobs(body: RetryFailed, who: Owner, client: ClientDep) -> BulkOutcome:
    """Run every failed job the filter finds again, never one that failed with 21610 (opted
    out), 21211, 21217, 21614 or 60200 (an invalid number): `skipped` counts those by code."""
    return client.retry_failed(
        owner=who, account_token=body.accountToken, campaign_id=body.campaignId,
        error_code=body.errorCode, since=body.since, until=body.until,
    )  # fmt: skip


@router.post("/api/jobs/cancel", response_model=BulkOutcome)
def cancel_matching_jobs(body: CancelMatching, who: Owner, client: ClientDep) -> BulkOutcome:
    """Cancel every job the filter finds that has not been sent yet."""
    return client.cancel_matching(
        owner=who, status=body.status, campaign_id=body.campaignId, error_code=body.errorCode,
        since=body.since, until=body.until,
    )  # fmt: skip
