"""The send routes: `POST /api/twilio/sendSms`, `/sendMms`, `/makeCall`, `/startVerification`.

These are the hot path (docs/benchmarks.md). The body is validated in one pass from its bytes
(pydantic's JSON mode), not by FastAPI's parameter machinery, which cost as much CPU as a whole
trivial route; the OpenAPI document still shows the model and the header (`send_openapi`). The
routes take only the `Request` and declare no dependencies for the same reason.
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from producer.deps import owner
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


async def submit(request: Request, kind: JobKind) -> JSONResponse:
    """Validate the body of a send route and queue the job."""
    who = await owner(request)
    raw = await request.body()
    if not raw.strip():
        raise InvalidRequest("Request body is required")
    if not is_json(request.headers.get("content-type")):
        raise InvalidRequest("Request body must be a JSON object")
    try:
        body = endpoint(kind).model.model_validate_json(raw)
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
    client: Client = request.app.state.client
    submission = await client.asubmit(
        kind, body, idempotency_key=idem, owner=who, request_id=request.state.request_id
    )
    # A ready response in the shape of `Accepted` (which documents it), so FastAPI skips its
    # response-model validation and serialization.
    return JSONResponse(
        {
            "jobId": submission.job_id,
            "status": submission.status.value,
            "statusUrl": status_url(submission.job_id),
        },
        status_code=202 if submission.created else 200,
    )


def _send_route(kind: JobKind) -> dict[str, Any]:
    return {
        "status_code": 202,
        "response_model": Accepted,
        "responses": ERROR_RESPONSES,
        "openapi_extra": send_openapi(endpoint(kind).model),
    }


@router.post("/api/twilio/sendSms", **_send_route(JobKind.sendSms))
async def send_sms(request: Request) -> JSONResponse:
    """Queue a text message. Answers at once with the job id; the result comes later."""
    return await submit(request, JobKind.sendSms)


@router.post("/api/twilio/sendMms", **_send_route(JobKind.sendMms))
async def send_mms(request: Request) -> JSONResponse:
    """Queue a media message."""
    return await submit(request, JobKind.sendMms)


@router.post("/api/twilio/makeCall", **_send_route(JobKind.makeCall))
async def make_call(request: Request) -> JSONResponse:
    """Queue a voice call."""
    return await submit(request, JobKind.makeCall)


@router.post("/api/twilio/startVerification", **_send_route(JobKind.startVerification))
async def start_verification(request: Request) -> JSONResponse:
    """Queue a Twilio Verify verification (Verify v2 sends the code by sms, call, whatsapp
    or email); the job's result is the Verification resource."""
    return await submit(request, JobKind.startVerification)
