"""Campaigns and the suppression list: a thin layer over the client library.

The client answers with records (`twilio_jobs.schemas`); the routes that declare no response
model answer with them dumped, so their OpenAPI entries stay as they were."""

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from producer.deps import ClientDep, Owner
from twilio_jobs.bulk import BulkOutcome
from twilio_jobs.campaigns import CampaignRequest
from twilio_jobs.errors import InvalidRequest
from twilio_jobs.schemas import CampaignAccepted, CampaignPage, JobStatus

router = APIRouter(tags=["campaigns"])


class RetryToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accountToken: str | None = Field(default=None, max_length=128)


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
    sender: Annotated[str | None, Query(max_length=64)] = None,
    reason: Annotated[str | None, Query(max_length=16)] = None,
) -> dict[str, Any]:
    """The account's suppressions, a page at a time: each with its scope (`sender`: a from
    number, a Messaging Service SID or `*` for the whole account), `reason` (21610, keyword,
    manual, import) and time; filter by `to`, `sender` and `reason`. The tenant must have
    proven it holds the account (`POST /api/accounts`, or a send with its credentials)."""
    page = client.list_suppressions(
        account_sid, to=to, cursor=cursor, limit=limit, sender=sender, reason=reason, owner=who
    )
    return page.model_dump(mode="json", exclude_unset=True)


class SuppressionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accountSid: str = Field(max_length=64)
    to: str = Field(max_length=64)
    sender: str = Field(default="*", max_length=64)
    reason: Literal["manual", "keyword", "21610", "import"] = "manual"


@router.post("/api/suppressions", tags=["suppressions"])
def add_suppression(body: SuppressionRequest, who: Owner, client: ClientDep) -> dict[str, Any]:
    """Suppress a recipient for one sender, a Messaging Service or (`*`, the default) the
    whole account. The tenant must have proven it holds the account."""
    added = client.add_suppression(body.accountSid, body.to, body.sender, body.reason, owner=who)
    return added.model_dump(mode="json", exclude_unset=True)


@router.post("/api/suppressions/import", tags=["suppressions"])
async def import_suppressions(
    request: Request,
    who: Owner,
    client: ClientDep,
    account_sid: Annotated[str, Query(alias="accountSid", max_length=64)],
) -> dict[str, int]:
    """Add the rows of a CSV body (`text/csv`; a header naming `to`, and optionally `sender`
    (default `*`), `reason` (default `import`) and `at`). Every row is checked before any is
    written. The tenant must have proven it holds the account."""
    client.accounts.require(who, account_sid)
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("Invalid CSV: must be UTF-8") from None
    imported = await run_in_threadpool(client.import_suppressions, account_sid, text, owner=who)
    return {"imported": imported}


@router.get(
    "/api/suppressions/export.csv",
    tags=["suppressions"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_suppressions(
    who: Owner,
    client: ClientDep,
    account_sid: Annotated[str, Query(alias="accountSid", max_length=64)],
) -> StreamingResponse:
    """The account's suppressions as CSV (`to,sender,reason,at`), streamed. The tenant must
    have proven it holds the account."""
    rows = client.export_suppressions(account_sid, owner=who)
    return StreamingResponse(
        iterate_in_threadpool(rows),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )


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


@router.post("/api/campaigns/{campaign_id}/retry-failed", response_model=BulkOutcome)
def retry_failed(
    campaign_id: str, who: Owner, client: ClientDep, body: RetryToken | None = None
) -> BulkOutcome:
    """Run the campaign's failed jobs again (never 21610 or an invalid number)."""
    client.campaign_status(campaign_id, owner=who)  # CampaignNotFound unless the key's own
    token = body.accountToken if body else None
    return client.retry_failed(owner=who, campaign_id=campaign_id, account_token=token)


@router.get(
    "/api/campaigns/{campaign_id}/report.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per recipient"}},
)
def campaign_report(campaign_id: str, who: Owner, client: ClientDep) -> StreamingResponse:
    """The delivery report, streamed: one row per recipient (to, the template's variables,
    status, delivery status, error code, Twilio SID, times, job id)."""
    lines = client.campaign_report(campaign_id, owner=who)
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{campaign_id}.csv"'},
    )
