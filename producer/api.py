"""The HTTP API: a thin layer over `producer.client.Client`."""

import asyncio
import json
import logging
import time
from typing import Annotated, Any

import redis
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.campaign_routes import campaign_router
from producer.client import Client, describe_errors, owner_of
from producer.errors import (
    InvalidRequest,
    JobNotFound,
    ServiceUnavailable,
    TwilioJobsError,
    Unauthorized,
)
from producer.schemas import (
    ERROR_RESPONSES,
    Accepted,
    CallRequest,
    JobKind,
    JobRecord,
    MmsRequest,
    SmsRequest,
    error_envelope,
)
from producer.settings import Settings, get_settings
from producer.store import is_final
from producer.webhook_routes import webhook_router

log = logging.getLogger("twilio_jobs.api")


def envelope_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(error_envelope(message), status_code=status)


class BodySizeLimit:
    """Refuses request bodies over the limit with 413, declared or chunked. Campaign uploads
    (`POST /api/campaigns`) have a limit of their own."""

    def __init__(self, app: ASGIApp, limit: int, campaign_limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.campaign_limit = campaign_limit or limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.campaign_limit if scope["path"] == "/api/campaigns" else self.limit
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                await self._refuse(scope, receive, send, limit)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = envelope_response(413, f"Request body over {limit} bytes")
        await response(scope, receive, send)


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="twilio-jobs",
        summary="Queue Twilio SMS, MMS and calls; poll or receive the result envelope.",
        version="0.1.0",
        responses=ERROR_RESPONSES,
    )
    app.add_middleware(
        BodySizeLimit,
        limit=settings.max_body_bytes,
        campaign_limit=settings.campaign_max_body_bytes,
    )
    the_client = client or Client(settings)

    def jobs() -> Client:
        return the_client

    api_keys = set(settings.api_key_list)

    def owner(authorization: Annotated[str | None, Header()] = None) -> str:
        if not api_keys:
            return ""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or key not in api_keys:
            raise Unauthorized("A valid API key is required: Authorization: Bearer <key>")
        return owner_of(key)

    Owner = Annotated[str, Depends(owner)]

    @app.exception_handler(TwilioJobsError)
    async def _our_error(request: Request, exc: TwilioJobsError) -> JSONResponse:
        return envelope_response(exc.http_status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return envelope_response(400, describe_errors(exc.errors()))

    @app.exception_handler(redis.RedisError)
    async def _redis_down(request: Request, exc: redis.RedisError) -> JSONResponse:
        log.warning("job store unavailable: %s", type(exc).__name__)
        return envelope_response(503, "The job store is unavailable; try again")

    def submit(
        kind: JobKind, body: Any, idempotency_key: str | None, who: str, response: Response
    ) -> Accepted:
        submission = jobs().submit(kind, body, idempotency_key=idempotency_key, owner=who)
        response.status_code = 202 if submission.created else 200
        return Accepted(
            jobId=submission.job_id,
            status=submission.status,
            statusUrl=f"/api/jobs/{submission.job_id}",
        )

    IdemHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]

    @app.post("/api/twilio/sendSms", status_code=202, response_model=Accepted)
    def send_sms(
        body: SmsRequest, response: Response, who: Owner, idem: IdemHeader = None
    ) -> Accepted:
        """Queue a text message. Answers at once with the job id; the result comes later."""
        return submit(JobKind.sendSms, body, idem, who, response)

    @app.post("/api/twilio/sendMms", status_code=202, response_model=Accepted)
    def send_mms(
        body: MmsRequest, response: Response, who: Owner, idem: IdemHeader = None
    ) -> Accepted:
        """Queue a media message."""
        return submit(JobKind.sendMms, body, idem, who, response)

    @app.post("/api/twilio/makeCall", status_code=202, response_model=Accepted)
    def make_call(
        body: CallRequest, response: Response, who: Owner, idem: IdemHeader = None
    ) -> Accepted:
        """Queue a voice call."""
        return submit(JobKind.makeCall, body, idem, who, response)

    @app.get("/api/jobs/{job_id}", response_model=JobRecord)
    async def get_job(
        job_id: str,
        who: Owner,
        wait: Annotated[float, Query(ge=0, le=settings.max_wait)] = 0,
    ) -> dict[str, Any]:
        """The job record; with `wait=N`, holds the request up to N seconds for a final state."""
        deadline = time.monotonic() + wait
        pause = 0.02
        while True:
            record = await run_in_threadpool(jobs().get, job_id, owner=who)
            if record is None:
                raise JobNotFound(job_id)
            if is_final(record["status"]) or time.monotonic() >= deadline:
                return record
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)

    @app.delete("/api/jobs/{job_id}", response_model=JobRecord)
    def cancel_job(job_id: str, who: Owner) -> dict[str, Any]:
        """Cancel a job that has not been sent yet (scheduled, queued or waiting to retry)."""
        return jobs().cancel(job_id, owner=who)

    @app.post("/api/jobs/{job_id}/retry", response_model=JobRecord)
    async def retry_job(job_id: str, request: Request, who: Owner) -> dict[str, Any]:
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
        return await run_in_threadpool(jobs().retry, job_id, owner=who, account_token=token)

    app.include_router(webhook_router(the_client, owner))
    app.include_router(campaign_router(jobs, owner))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        if not jobs().ping():
            raise ServiceUnavailable("The job store is unavailable")
        return {"status": "ready"}

    return app
