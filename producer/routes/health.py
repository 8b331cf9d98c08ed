"""Liveness and readiness."""

from fastapi import APIRouter

from producer.deps import ClientDep
from twilio_jobs.errors import ServiceUnavailable

router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(client: ClientDep) -> dict[str, str]:
    if not client.ping():
        raise ServiceUnavailable("The job store is unavailable")
    return {"status": "ready"}
