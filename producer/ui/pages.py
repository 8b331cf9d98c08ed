"""The dashboard's pages at `/ui`: server-rendered Jinja2 over the same client library the API
routes use, with a few lines of plain JavaScript (`static/ui.js`) for live campaign progress.

Pages read; forms (POST, CSRF-checked in `session.form`) change things through the same
`Client` methods as the API, scoped to the signed-in tenant.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import iterate_in_threadpool, run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from producer.ui import session
from twilio_jobs import stats
from twilio_jobs.client import Client
from twilio_jobs.errors import (
    CampaignNotFound,
    InvalidRequest,
    JobNotFound,
    TwilioJobsError,
    Unauthorized,
)
from twilio_jobs.lifecycle import JobStatus
from twilio_jobs.search import parse_cursor

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _pretty(value: Any) -> str:
    """Indented JSON of a value or a record (`twilio_jobs.schemas`)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, indent=2, sort_keys=True)


templates.env.filters["pretty"] = _pretty

router = APIRouter(prefix="/ui", include_in_schema=False)

CAMPAIGN_ACTIONS = ("pause", "resume", "cancel")


def _client(request: Request) -> Client:
    found: Client = request.app.state.client
    return found


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    context.update(
        request=request,
        csrf=session.csrf_token(request),
        keys_on=session.tenants(request).enabled,
        statuses=[s.value for s in JobStatus],
    )
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    return session.remember(request, response)


def failure(request: Request, exc: TwilioJobsError) -> Response:
    if isinstance(exc, Unauthorized) and request.method == "GET":
        return RedirectResponse("/ui/login", status_code=303)
    return page(request, "error.html", status_code=exc.http_status, message=exc.message)


def back(to: str, note: str | None = None) -> RedirectResponse:
    if note:
        to += ("&" if "?" in to else "?") + urlencode({"note": note})
    return RedirectResponse(to, status_code=303)


# -- signing in ------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request) -> Response:
    return page(request, "login.html", error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    try:
        fields = await session.form(request)
        key = fields.get("key", "").strip()
        session.tenants(request).identify(f"Bearer {key}")
    except TwilioJobsError as exc:
        return page(request, "login.html", status_code=exc.http_status, error=exc.message)
    response = RedirectResponse("/ui", status_code=303)
    session.sign_in(request, response, key)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    try:
        await session.form(request)
    except TwilioJobsError as exc:
        return failure(request, exc)
    response = RedirectResponse("/ui/login", status_code=303)
    session.sign_out(response)
    return response


# -- overview --------------------------------------------------------------------------------


def _overview(client: Client, who: str) -> dict[str, Any]:
    """The tenant's own figures (twilio_jobs.search) beside the service's, which `GET /metrics`
    shows too and reads the same way (twilio_jobs.stats)."""
    now = time.time()
    snap = stats.read(client.redis, client.dispatcher, client.settings)
    queue = client.settings.queue
    return {
        **client.search.overview(who, now),
        "queue": queue,
        "queueDepth": snap.queues.get(queue),
        "scheduled": snap.schedule,
        "due": snap.schedule_overdue,
        "failedWebhooks": len(client.webhooks.failed(who, 1000)),
        "workersAlive": snap.workers_alive,
    }


@router.get("")
def overview(request: Request) -> Response:
    try:
        who = session.owner(request)
        return page(request, "overview.html", o=_overview(_client(request), who), tab="overview")
    except TwilioJobsError as exc:
        return failure(request, exc)


# -- campaigns -------------------------------------------------------------------------------


@router.get("/campaigns")
def campaigns(request: Request, cursor: str | None = None) -> Response:
    try:
        who = session.owner(request)
        parse_cursor(cursor)
        listed = _client(request).list_campaigns(owner=who, cursor=cursor, limit=20)
        return page(request, "campaigns.html", listed=listed, tab="campaigns")
    except TwilioJobsError as exc:
        return failure(request, exc)


@router.get("/campaigns/{campaign_id}")
def campaign(request: Request, campaign_id: str, note: str | None = None) -> Response:
    try:
        who = session.owner(request)
        status = _client(request).campaign_state.status(campaign_id, owner=who)
        return page(request, "campaign.html", c=status, note=note, tab="campaigns")
    except TwilioJobsError as exc:
        return failure(request, exc)


@router.get("/campaigns/{campaign_id}/progress")
def campaign_progress(request: Request, campaign_id: str) -> Response:
    """The live part of the campaign page, fetched again every second by `static/ui.js`."""
    try:
        who = session.owner(request)
        status = _client(request).campaign_state.status(campaign_id, owner=who)
        return page(request, "campaign_progress.html", c=status)
    except TwilioJobsError as exc:
        return failure(request, exc)


@router.get("/campaigns/{campaign_id}/report.csv")
def campaign_report(request: Request, campaign_id: str) -> Response:
    """The delivery report, as `GET /api/campaigns/{id}/report.csv` streams it."""
    try:
        who = session.owner(request)
        lines = _client(request).campaign_report(campaign_id, owner=who)
    except TwilioJobsError as exc:
        return failure(request, exc)
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{campaign_id}.csv"'},
    )


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(request: Request, campaign_id: str, action: str) -> Response:
    try:
        await session.form(request)
        who = session.owner(request)
        if action not in CAMPAIGN_ACTIONS:
            raise CampaignNotFound(campaign_id)
        state = _client(request).campaign_state
        await run_in_threadpool(getattr(state, action), campaign_id, owner=who)
    except TwilioJobsError as exc:
        return failure(request, exc)
    return back(f"/ui/campaigns/{campaign_id}", f"{action}: done")


# -- jobs ------------------------------------------------------------------------------------


def _moment(text: str | None) -> datetime | None:
    """A `datetime-local` field (UTC) or any ISO 8601 time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"Not a time: {text}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/jobs")
def jobs(request: Request) -> Response:
    q = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
    try:
        who = session.owner(request)
        job_id = q.get("jobId")
        if job_id:
            _client(request).get(job_id, owner=who)  # JobNotFound unless the key's own
            return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)
        status = q.get("status")
        if status and status not in JobStatus.__members__:
            raise InvalidRequest(f"Unknown status: {status}")
        code = q.get("errorCode")
        if code and not code.isdigit():
            raise InvalidRequest("An error code is a number")
        found = _client(request).list_jobs(
            owner=who,
            status=status or None,
            to=q.get("to"),
            campaign_id=q.get("campaignId"),
            error_code=int(code) if code else None,
            since=_moment(q.get("since")),
            until=_moment(q.get("until")),
            cursor=q.get("cursor"),
            limit=50,
        )
        following = (
            "/ui/jobs?" + urlencode({**q, "cursor": found.nextCursor}) if found.nextCursor else None
        )
        return page(request, "jobs.html", q=q, found=found, following=following, tab="jobs")
    except TwilioJobsError as exc:
        return failure(request, exc)


@router.get("/jobs/{job_id}")
def job(request: Request, job_id: str, note: str | None = None) -> Response:
    try:
        who = session.owner(request)
        record = _client(request).get(job_id, owner=who)
        return page(request, "job.html", j=record, note=note, tab="jobs")
    except TwilioJobsError as exc:
        return failure(request, exc)


@router.post("/jobs/{job_id}/{action}")
async def job_action(request: Request, job_id: str, action: str) -> Response:
    try:
        fields = await session.form(request)
        who = session.owner(request)
        client = _client(request)
        if action == "retry":
            token = fields.get("accountToken") or None
            await run_in_threadpool(client.retry, job_id, owner=who, account_token=token)
        elif action == "cancel":
            await run_in_threadpool(client.cancel, job_id, owner=who)
        elif action == "webhook":
            await run_in_threadpool(client.replay_webhook, job_id, owner=who)
        else:
            raise JobNotFound(job_id)
    except TwilioJobsError as exc:
        return failure(request, exc)
    following = fields.get("next", "")
    if not following.startswith("/ui/") or "//" in following or "\\" in following:
        following = f"/ui/jobs/{job_id}"
    return back(following, f"{action}: done")


# -- webhooks and suppressions ---------------------------------------------------------------


@router.get("/webhooks")
def webhooks(request: Request, note: str | None = None) -> Response:
    try:
        who = session.owner(request)
        failed = _client(request).webhooks.failed(who, 100)
        return page(request, "webhooks.html", failed=failed, note=note, tab="webhooks")
    except TwilioJobsError as exc:
        return failure(request, exc)


@router.get("/suppressions")
def suppressions(
    request: Request, accountSid: str | None = None, to: str | None = None, note: str | None = None
) -> Response:
    try:
        who = session.owner(request)
        client = _client(request)
        accounts = client.accounts.accounts(who) if who else []
        listed = None
        if accountSid:
            client.accounts.require(who, accountSid)
            listed = client.suppressions.list(accountSid, to=to or None, limit=200)
        return page(
            request,
            "suppressions.html",
            accounts=accounts,
            account=accountSid or "",
            to=to or "",
            listed=listed,
            note=note,
            tab="suppressions",
        )
    except TwilioJobsError as exc:
        return failure(request, exc)


@router.get("/suppressions/export.csv")
def export_suppressions(request: Request, accountSid: str = "") -> Response:  # noqa: N803
    try:
        who = session.owner(request)
        client = _client(request)
        client.accounts.require(who, accountSid)
        lines = client.suppressions.export_csv(accountSid)
    except TwilioJobsError as exc:
        return failure(request, exc)
    return StreamingResponse(iterate_in_threadpool(lines), media_type="text/csv")


async def _on_suppressions(
    request: Request, act: Callable[[Client, str, dict[str, str]], str]
) -> Response:
    """A suppression form: checked (CSRF, the key's tenant has proven the account), done, and
    back to the account's list with what `act` says it did."""
    try:
        fields = await session.form(request)
        who = session.owner(request)
        client = _client(request)
        account = fields.get("accountSid", "")
        client.accounts.require(who, account)
        note = act(client, account, fields)
    except TwilioJobsError as exc:
        return failure(request, exc)
    return back(f"/ui/suppressions?{urlencode({'accountSid': account})}", note)


@router.post("/suppressions/add")
async def add_suppression(request: Request) -> Response:
    def add(client: Client, account: str, fields: dict[str, str]) -> str:
        to, scope = fields.get("to", "").strip(), fields.get("sender", "").strip() or "*"
        return f"added {client.suppressions.add(account, to, scope).to}"

    return await _on_suppressions(request, add)


@router.post("/suppressions/import")
async def import_suppressions(request: Request) -> Response:
    def load(client: Client, account: str, fields: dict[str, str]) -> str:
        return f"imported {client.suppressions.import_csv(account, fields.get('csv', ''))}"

    return await _on_suppressions(request, load)


@router.post("/suppressions/remove")
async def lift_suppression(request: Request) -> Response:
    def lift(client: Client, account: str, fields: dict[str, str]) -> str:
        sender = fields.get("sender") or None
        return f"lifted {client.suppressions.lift(account, fields.get('to', ''), sender)}"

    return await _on_suppressions(request, lift)
