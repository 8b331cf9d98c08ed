"""Webhooks: Twilio's status callbacks and inbound messages in, and our result webhooks'
failures out."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from producer.deps import ClientDep, InboundDep, Owner, StatusCallbacksDep
from twilio_jobs import inbound
from twilio_jobs.schemas import JobRecord
from twilio_jobs.status_callbacks import ROUTE

router = APIRouter(tags=["webhooks"])


@router.post(ROUTE, status_code=204)
async def twilio_status(
    job_id: str, request: Request, callbacks: StatusCallbacksDep, token: str | None = None
) -> Response:
    """Twilio's status callback for a job (form-encoded, or JSON with `bodySHA256` in the
    URL; signed by Twilio). Updates the
    job's `deliveryStatus`, never backwards, and sends the delivery-status webhook."""
    raw = await request.body()
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = callbacks.public_url(job_id, query, str(request.url))
    signature = request.headers.get("X-Twilio-Signature")
    kind = request.headers.get("Content-Type", "")
    await run_in_threadpool(callbacks.accept, job_id, token, raw, kind, signature, url)
    return Response(status_code=204)


@router.post(inbound.ROUTE, response_class=Response)
async def twilio_inbound(request: Request, handler: InboundDep) -> Response:
    """A message to one of the account's numbers (the number's or Messaging Service's
    incoming-message webhook; a form signed by Twilio with the account's token). Opt-out
    keywords suppress the sender for that number or Messaging Service, opt-in keywords lift
    it; every message becomes an `inbound.message` webhook event. Answers empty TwiML."""
    raw = await request.body()
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = handler.public_url(query, str(request.url))
    signature = request.headers.get("X-Twilio-Signature")
    await run_in_threadpool(handler.accept, raw, signature, url)
    return Response(inbound.EMPTY_TWIML, media_type="text/xml")


@router.get("/api/webhooks/failed")
def failed_webhooks(
    who: Owner, client: ClientDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, list[dict[str, Any]]]:
    """Result webhook deliveries that ran out of attempts, newest first."""
    failed = client.failed_webhooks(limit, owner=who)
    return {"deliveries": [delivery.model_dump(mode="json") for delivery in failed]}


@router.post("/api/jobs/{job_id}/webhook", status_code=202, response_model=JobRecord)
def replay_webhook(job_id: str, who: Owner, client: ClientDep) -> JobRecord:
    """Send a job's exhausted webhook deliveries again, from their first attempt."""
    return client.replay_webhook(job_id, owner=who)
