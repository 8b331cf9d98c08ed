"""The HTTP API: a thin layer over `twilio_jobs.client.Client`."""

import asyncio
import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from producer import middleware
from producer.account_routes import account_router
from producer.campaign_routes import campaign_router
from producer.webhook_routes import webhook_router
from twilio_jobs.client import Client, describe_errors
from twilio_jobs.errors import (
    InvalidRequest,
    JobNotFound,
    ServiceUnavailable,
)
from twilio_jobs.lifecycle import is_final
from twilio_jobs.schemas import (
    ERROR_RESPONSES,
    REQUEST_MODELS,
    Accepted,
    JobKind,
    JobRecord,
)
from twilio_jobs.settings import Settings, get_settings
from twilio_jobs.tenancy import Tenants

log = logging.getLogger("twilio_jobs.api")


MAX_IDEMPOTENCY_KEY = 255


def send_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """The request body and header of a send route, for the OpenAPI document."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema(by_alias=True)}},
        },
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
            }
        ],
    }


def is_json(content_type: str | None) -> bool:
    """As FastAPI reads a body: JSON when the type says so or when there is no type."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Everything loaded at start-up lives as long as the process: keep it out of the
    # collector's full passes, which otherwise stall every request for tens of ms every few
    # thousand requests (the enqueue route's p99 in docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    yield


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="twilio-jobs",
        summary="Queue Twilio SMS, MMS and calls; poll or receive the result envelope.",
        version="0.1.0",
        responses=ERROR_RESPONSES,
        lifespan=_lifespan,
    )
    middleware.install(app, settings.max_body_bytes, settings.campaign_max_body_bytes)
    the_client = client or Client(settings)

    def jobs() -> Client:
        return the_client

    tenants = Tenants(settings.api_keys.get_secret_value() if settings.api_keys else None)

    async def owner(request: Request) -> str:
        """The request's tenant id ("" without API keys). The header is read directly rather
        than declared as a Header parameter, which goes through FastAPI's per-request parameter
        validation."""
        return tenants.identify(request.headers.get("authorization"))

    Owner = Annotated[str, Depends(owner)]

    async def submit(
        kind: JobKind, body: Any, idempotency_key: str | None, who: str
    ) -> JSONResponse:
        submission = await jobs().asubmit(kind, body, idempotency_key=idempotency_key, owner=who)
        # A ready response in the shape of `Accepted` (which documents it), so FastAPI skips
        # its response-model validation and serialization.
        return JSONResponse(
            {
                "jobId": submission.job_id,
                "status": submission.status.value,
                "statusUrl": f"/api/jobs/{submission.job_id}",
            },
            status_code=202 if submission.created else 200,
        )

    def send_route(path: str, name: str, kind: JobKind, doc: str) -> None:
        model = REQUEST_MODELS[kind]

        async def send(request: Request) -> JSONResponse:
            # The body is validated here in one pass from its bytes (pydantic's JSON mode), not
            # by FastAPI's parameter machinery, which cost as much CPU as a whole trivial route
            # (docs/benchmarks.md); the OpenAPI document still shows the model and the header.
            who = await owner(request)
            raw = await request.body()
            if not raw.strip():
                raise InvalidRequest("Request body is required")
            if not is_json(request.headers.get("content-type")):
                raise InvalidRequest("Request body must be a JSON object")
            try:
                body = model.model_validate_json(raw)
            except ValidationError as exc:
                # Located as FastAPI locates body errors, which describe_errors expects.
                errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                raise InvalidRequest(describe_errors(errors)) from None
            idem = request.headers.get("idempotency-key")
            if idem is not None and len(idem) > MAX_IDEMPOTENCY_KEY:
                raise InvalidRequest(
                    "Invalid field 'Idempotency-Key': String should have at most "
                    f"{MAX_IDEMPOTENCY_KEY} characters"
                )
            return await submit(kind, body, idem, who)

        send.__name__ = name
        send.__doc__ = doc
        app.post(
            path,
            status_code=202,
            response_model=Accepted,
            responses=ERROR_RESPONSES,
            openapi_extra=send_openapi(model),
        )(send)

    send_route(
        "/api/twilio/sendSms",
        "send_sms",
        JobKind.sendSms,
        "Queue a text message. Answers at once with the job id; the result comes later.",
    )
    send_route("/api/twilio/sendMms", "send_mms", JobKind.sendMms, "Queue a media message.")
    send_route("/api/twilio/makeCall", "make_call", JobKind.makeCall, "Queue a voice call.")

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
    app.include_router(account_router(jobs, owner))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        if not jobs().ping():
            raise ServiceUnavailable("The job store is unavailable")
        return {"status": "ready"}

    return app
