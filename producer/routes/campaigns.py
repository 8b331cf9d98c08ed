"""Campaigns and the suppression list: a thin layer over the client library.

The client answers with records (`twilio_jobs.schemas`); the routes that declare no response
model answer with them dumped, so their OpenAPI entries stay as they were."""

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool

from producer.deps import ClientDep, Owner
from twilio_jobs.campaigns import CampaignRequest
from twilio_jobs.schemas import CampaignAccepted, JobStatus

router = APIRouter(tags=["campaigns"])


@router.post("/api/campaigns", status_code=202, response_model=CampaignAccepted)
async def create_campaign(
    body: CampaignRequest,
    who: Owner,
    client: ClientDep,
    response: Response,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> CampaignAccepted:
    """Up to 100,000 recipients, `{{name}}` placeholders in `body` filled from each
    recipient's fields. Invalid rows are reported by index and not sent; duplicates are
    dropped. `?dryRun=true` validates and estimates without sending. With an
    `Idempotency-Key` (or `idempotencyKey`), a repeat answers 200 with the first answer."""
    if dry_run:
        response.status_code = 200
        return await run_in_threadpool(client.campaigns.create, body, owner=who, dry_run=True)
    answer, created = await run_in_threadpool(
        partial(client.campaigns.create_once, body, owner=who, idempotency_key=idempotency_key)
    )
    if not created:
        response.status_code = 200  # the first answer of this idempotency key
    return answer


@router.get("/api/campaigns/{campaign_id}")
def campaign_status(campaign_id: str, who: Owner, client: ClientDep) -> dict[str, Any]:
    """Counts per job status and delivery status, progress, send rate, ETA, top errors."""
    return client.campaign_status(campaign_id, owner=who).model_dump(mode="json")


@router.get("/api/campaigns/{campaign_id}/jobs")
def campaign_jobs(
    campaign_id: str,
    who: Owner,
    client: ClientDep,
    status: JobStatus | None = None,
    cursor: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The campaign's job records, a page at a time (`nextCursor`)."""
    page = client.campaign_jobs(campaign_id, owner=who, status=status, cursor=cursor, limit=limit)
    return page.model_dump(mode="json", exclude_unset=True)


@router.post("/api/campaigns/{campaign_id}/pause")
def pause(campaign_id: str, who: Owner, client: ClientDep) -> dict[str, Any]:
    """Stop starting new sends (within a second, on every worker); requests in flight end."""
    return client.pause_campaign(campaign_id, owner=who).model_dump(mode="json")


@router.post("/api/campaigns/{campaign_id}/resume")
def resume(campaign_id: str, who: Owner, client: ClientDep) -> dict[str, Any]:
    return client.resume_campaign(campaign_id, owner=who).model_dump(mode="json")


@router.post("/api/campaigns/{campaign_id}/cancel")
def cancel(campaign_id: str, who: Owner, client: ClientDep) -> dict[str, Any]:
    """End every job not yet handed to Twilio as `cancelled`; sent ones are untouched."""
    return client.cancel_campaign(campaign_id, owner=who).model_dump(mode="json")


@router.get("/api/suppressions", tags=["suppressions"])
def list_suppressions(
    who: Owner,
    client: ClientDep,
    account_sid: Annotated[str, Query(alias="accountSid", max_length=64)],
    to: str | None = None,
    cursor: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Recipients who opted out (21610), per sender. The tenant must have proven it holds
    the account (`POST /api/accounts`, or a send with its credentials)."""
    page = client.list_suppressions(account_sid, to=to, cursor=cursor, limit=limit, owner=who)
    return page.model_dump(mode="json", exclude_unset=True)


@router.delete("/api/suppressions", tags=["suppressions"])
def lift_suppression(
    who: Owner,
    client: ClientDep,
    account_sid: Annotated[str, Query(alias="accountSid", max_length=64)],
    to: Annotated[str, Query(max_length=64)],
    sender: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, int]:
    """Lift a suppression, for one sender or (without `sender`) for all. The tenant must
    have proven it holds the account."""
    return {"lifted": client.lift_suppression(account_sid, to, sender, owner=who)}
