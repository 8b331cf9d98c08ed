"""The body-size limit and the error handlers: every error is answered with the error
envelope, never with a traceback or a 500 for bad input."""

import logging
import re
import secrets
import time

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twilio_jobs import tracing
from twilio_jobs.client import describe_errors
from twilio_jobs.errors import PayloadTooLarge, TwilioJobsError
from twilio_jobs.schemas import error_envelope

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
        error = PayloadTooLarge(f"Request body over {limit} bytes")
        response = envelope_response(error.http_status, error.message)
        await response(scope, receive, send)


REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class AccessLog:
    """One line per request (method, path without its query, status, duration, request id).
    The request id is the caller's `X-Request-Id` when it is a sane token, else a new one; it
    is answered in `X-Request-Id`, kept in `request.state.request_id` for the routes (a job
    keeps it on its record), and logged with the line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger("twilio_jobs.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if tracing.enabled():
                await self._traced(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if self.log.isEnabledFor(logging.INFO):  # the fields only for a line that is written
                self._line(scope, status, request_id, started)

    def _line(self, scope: Scope, status: int, request_id: str, started: float) -> None:
        self.log.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status,
            extra={
                "requestId": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "durationMs": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request as the server span of its trace (a caller's `traceparent` continued)."""
        parent = dict(scope["headers"]).get(b"traceparent", b"").decode("latin-1")
        name = f"{scope['method']} {scope['path']}"
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        with tracing.span(name, parent=parent, kind="server", attributes=attributes):
            await self.app(scope, receive, send)


async def our_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TwilioJobsError)
    return envelope_response(exc.http_status, exc.message)


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return envelope_response(400, describe_errors(exc.errors()))


async def store_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("job store unavailable: %s", type(exc).__name__)
    return envelope_response(503, "The job store is unavailable; try again")


def install(app: FastAPI, max_body_bytes: int, campaign_max_body_bytes: int) -> None:
    """Add the body-size limit and the error handlers to `app`."""
    app.add_middleware(BodySizeLimit, limit=max_body_bytes, campaign_limit=campaign_max_body_bytes)
    app.add_middleware(AccessLog)  # outermost: it sees every answer, a 413 included
    app.add_exception_handler(TwilioJobsError, our_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(redis.RedisError, store_down)
