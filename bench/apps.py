"""FastAPI apps that the enqueue route is compared with, served the same way.

- `trivial_app`: a route that does nothing (the issue's yardstick).
- `validate_only_app`: the send route's own signature (the SmsRequest body, the owner
  dependency, the Idempotency-Key header) answering a constant 202 without enqueueing: the
  share of the route's cost that is FastAPI's request handling.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse

from twilio_jobs.schemas import Accepted, SmsRequest


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
        who: Annotated[str, Depends(owner)],
        idem: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
    ) -> JSONResponse:
        job_id = "0" * 32
        return JSONResponse(
            {"jobId": job_id, "status": "queued", "statusUrl": f"/api/jobs/{job_id}"},
            status_code=202,
        )

    return app
