"""Campaigns and the suppression list: a thin layer over the client library."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool

from producer.deps import ClientDep, Owner
from twilio_jobs.campaigns import CampaignAccepted, CampaignRequest
from twilio_jobs.schemas import CampaignPage, JobStatus

router = APIRouter(tags=["campaigns"])


@router.post("/api/campaigns", status_code=202, response_model=CampaignAccepted)
async def create_campaign(
    body: CampaignRequest,
    who: Owner,
    client: ClientDep,
    response: Response,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> dict[str, Any]:
    """Up to 100,000 recipients, `{{name}}` placeholders in `body` filled from each
    recipient's fields. Invalid rows are reported by index and not sent; duplicates are
    dropped. `?dryRun=true` validates and estimates without sending."""
    answer = await run_in_threadpool(client.campaigns.create, body, owner=who, dry_run=dry_run)
    if dry_run:
        response.status_code = 200
    return answer


@router.get("/api/campaigns", response_model=CampaignPage)
def list_campaigns(
    who: Owner,
    client: ClientDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> CampaignPage:
    """The caller's campaigns, newest first, each as `GET /api/campaigns/{id}` shows it."""
    return client.list_campaigns(owner=who, cursor=cursor, limit=limit)


@router.get("/api/campaigns/{campaign_id}")
def campaign_status(campaign_id: str, who: Owner, client: ClientDep) -> dict[str, Any]:
    """Counts per job status and delivery status, progress, send rate, ETA, top errors."""
    return client.campaign_state.status(campaign_id, owner=who)


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
    return client.campaign_state.jobs(
        campaign_id, owner=who, status=status, cursor=cursor, limit=limit
    )


@router.post("/api/campaigns/{campaign_id}/pause")
def pause(campaign_id: str, who: Owner, client: ClientDep) -> dict[str, Any]:
    """Stop starting new sends (within a second, on every worker); requests in flight end."""
    return client.campaign_state.pause(campaign_id, owner=who)


@router.post("/api/campaigns/{campaign_id}/resume")
def resume(campaign_id: str, who: Owner, client: ClientDep) -> dict[str, Any]:
    return client.campaign_state.resume(campaign_id, owner=who)


@router.post("/api/campaigns/{campaign_id}/cancel")
def cancel(campaign_id: str, who: Owner, client: ClientDep) -> dict[str, Any]:
    """End every job not yet handed to Twilio as `cancelled`; sent ones are untouched."""
    return client.campaign_state.cancel(campaign_id, owner=who)


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
    client.accounts.require(who, account_sid)
    return client.suppressions.list(account_sid, to=to, cursor=cursor, limit=limit)


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
    client.accounts.require(who, account_sid)
    return {"lifted": client.suppressions.lift(account_sid, to, sender)}
