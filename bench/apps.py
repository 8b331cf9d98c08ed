"""FastAPI apps that the enqueue route is compared with, served the same way.

- `trivial_app`: a route that does nothing (the issue's yardstick).
- `validate_only_app`: the send route's own signature (the SmsRequest body, the owner
  dependency, the Idempotency-Key header, the 202 response model) answering a constant without
  enqueueing: the share of the route's cost that is FastAPI's request handling.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request, Response

from producer.schemas import Accepted, JobStatus, SmsRequest


def trivial_app() -> FastAPI:
    app = FastAPI()

    @app.post("/trivial")
    async def trivial() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def owner(request: Request) -> str:
    return ""


def validate_only_app() -> FastAPI:
    app = FastAPI()

    @app.post("/api/twilio/sendSms", status_code=202, response_model=Accepted)
    async def send_sms(
        body: SmsRequest,
        response: Response,
        who: Annotated[str, Depends(owner)],
        idem: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
    ) -> Accepted:
        return Accepted(jobId="0" * 32, status=JobStatus.queued, statusUrl="/api/jobs/" + "0" * 32)

    return app
