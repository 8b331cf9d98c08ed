"""The send routes: `POST /api/twilio/sendSms`, `/sendMms`, `/makeCall`, `/startVerification`.

These are the hot path (docs/benchmarks.md). The body is validated in one pass from its bytes
(pydantic's JSON mode), not by FastAPI's parameter machinery, which cost as much CPU as a whole
trivial route; the OpenAPI document still shows the model and the header (`send_openapi`). The
routes take only the `Request` and declare no dependencies for the same reason. Their POSTs are
answered before the router by `FastSends` (installed by `producer.api.create_app`), through the
same `accept`; the routes stay for the OpenAPI document and for what `FastSends` passes on.
"""

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from twilio_jobs import tracing
from twilio_jobs.client import Client, describe_errors, status_url
from twilio_jobs.errors import InvalidRequest
from twilio_jobs.schemas import ERROR_RESPONSES, Accepted, JobKind
from twilio_jobs.twilio.endpoints import endpoint

MAX_IDEMPOTENCY_KEY = 255

router = APIRouter()


def send_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """The request body and header of a send route, for the OpenAPI document."""
    schema = inline(model.model_json_schema(by_alias=True))
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
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


def inline(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` (nested models, e.g. `sendWindow`) written in place of their
    references: the document's root is the OpenAPI document, where `#/$defs` is nothing."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**walk(defs[ref.removeprefix("#/$defs/")]), **walk(rest)}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(schema)
    return result


def is_json(content_type: str | None) -> bool:
    """As FastAPI reads a body: JSON when the type says so or when there is no type."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of the (lower-case) header `name`, as Starlette's `Headers.get`."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


ACCEPTED = '{"jobId":"%s","status":"%s","statusUrl":"/api/jobs/%s"}'
"""The answer, as `JSONResponse` renders the `Accepted` shape (job ids are hex)."""


async def accept(
    state: Any,
    headers: list[tuple[bytes, bytes]],
    body_of: Callable[[], Awaitable[bytes]],
    request_id: str,
    kind: JobKind,
) -> tuple[int, bytes]:
    """Validate the body of a send route and queue the job: the status and JSON body of the
    answer. Both ways in (the route below and `FastSends`) come here, in this order: the
    tenant, the body, its type, the model, the Idempotency-Key header."""
    who: str = state.tenants.identify(header(headers, b"authorization"))
    raw = await body_of()
    if not raw.strip():
        raise InvalidRequest("Request body is required")
    if not is_json(header(headers, b"content-type")):
        raise InvalidRequest("Request body must be a JSON object")
    try:
        body = endpoint(kind).model.model_validate_json(raw)
    except ValidationError as exc:
        # Located as FastAPI locates body errors, which describe_errors expects.
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise InvalidRequest(describe_errors(errors)) from None
    idem = header(headers, b"idempotency-key")
    if idem is not None and len(idem) > MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest(
            "Invalid field 'Idempotency-Key': String should have at most "
            f"{MAX_IDEMPOTENCY_KEY} characters"
        )
    client: Client = state.client
    submission = await client.asubmit(
        kind, body, idempotency_key=idem, owner=who, request_id=request_id
    )
    job_id, status = submission.job_id, submission.status.value
    if job_id.isalnum() and job_id.isascii():
        text = ACCEPTED % (job_id, status, job_id)
    else:  # not one of ours: rendered as JSONResponse would
        text = json.dumps(
            {"jobId": job_id, "status": status, "statusUrl": status_url(job_id)},
            ensure_ascii=False,
            separators=(",", ":"),
        )
    return (202 if submission.created else 200), text.encode()


async def submit(request: Request, kind: JobKind) -> Response:
    """The routed way in (what `FastSends` does not take, e.g. under a root path)."""
    status, body = await accept(
        request.app.state, request.scope["headers"], request.body, request.state.request_id, kind
    )
    # A ready response in the shape of `Accepted` (which documents it), so FastAPI skips its
    # response-model validation and serialization.
    return Response(body, status_code=status, media_type="application/json")


def _send_route(kind: JobKind) -> dict[str, Any]:
    return {
        "status_code": 202,
        "response_model": Accepted,
        "responses": ERROR_RESPONSES,
        "openapi_extra": send_openapi(endpoint(kind).model),
    }


@router.post("/api/twilio/sendSms", **_send_route(JobKind.sendSms))
async def send_sms(request: Request) -> Response:
    """Queue a text message. Answers at once with the job id; the result comes later."""
    return await submit(request, JobKind.sendSms)


@router.post("/api/twilio/sendMms", **_send_route(JobKind.sendMms))
async def send_mms(request: Request) -> Response:
    """Queue a media message."""
    return await submit(request, JobKind.sendMms)


@router.post("/api/twilio/makeCall", **_send_route(JobKind.makeCall))
async def make_call(request: Request) -> Response:
    """Queue a voice call."""
    return await submit(request, JobKind.makeCall)


@router.post("/api/twilio/startVerification", **_send_route(JobKind.startVerification))
async def start_verification(request: Request) -> Response:
    """Queue a Twilio Verify verification (Verify v2 sends the code by sms, call, whatsapp
    or email); the job's result is the Verification resource."""
    return await submit(request, JobKind.startVerification)


SEND_PATHS = {
    "/api/twilio/sendSms": JobKind.sendSms,
    "/api/twilio/sendMms": JobKind.sendMms,
    "/api/twilio/makeCall": JobKind.makeCall,
    "/api/twilio/startVerification": JobKind.startVerification,
}
JSON_HEADER = (b"content-type", b"application/json")


class FastSends:
    """The send routes' POSTs answered here, inside the access log and the body-size limit,
    without FastAPI's router, request objects and exception middleware, which cost about as
    much CPU as the enqueue itself (docs/benchmarks.md). The same `accept` as the routes, the
    app's own exception handlers for its errors, and the same bytes out; anything else (other
    methods and paths, a root path, tracing on) goes on to the app, whose routes stay and
    document the API."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = SEND_PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if (
            kind is None
            or scope["method"] != "POST"
            or scope.get("root_path")
            or "fastapi.telemetry" in scope
            or tracing.enabled()
        ):
            await self.app(scope, receive, send)
            return

        async def body_of() -> bytes:  # as Starlette's Request.body reads it
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        return b"".join(chunks)
                elif message["type"] == "http.disconnect":
                    raise ClientDisconnect()

        try:
            status, body = await accept(
                self.api.state, scope["headers"], body_of, scope["state"]["request_id"], kind
            )
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # to the server-error middleware, as from the route
            request = Request(scope, receive, send)
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
            if response is not None:
                await response(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"%d" % len(body)), JSON_HEADER],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _handler(self, exc: Exception) -> Any:
        """The app's handler for `exc`, as its exception middleware finds it (the nearest
        class in the exception's MRO; 500 and `Exception` belong to the server-error one)."""
        handlers = self.api.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None
