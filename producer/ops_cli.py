"""The operator's CLI over the HTTP API (`twilio_jobs.HttpClient`): `twilio-jobs jobs ...`,
`campaigns ...`, `suppressions ...`, `webhooks ...`. Tables by rich, or `--json` for scripts.
It needs only the API's URL (`--url`, `TWILIO_JOBS_URL`) and a key (`--api-key`,
`TWILIO_JOBS_API_KEY`), never Redis or the secret key. An API error is printed as the error
envelope's message with exit code 1."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from twilio_jobs.errors import TwilioJobsError
from twilio_jobs.http_client import HttpClient
from twilio_jobs.lifecycle import JobStatus
from twilio_jobs.suppressions import REASONS

F = TypeVar("F", bound=Callable[..., Any])
console = Console()


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


class Ctx:
    def __init__(self, url: str, api_key: str | None) -> None:
        self.url, self.api_key = url, api_key

    def client(self) -> HttpClient:
        return HttpClient(self.url, api_key=self.api_key)


def run(ctx: click.Context, action: Callable[[HttpClient], Any]) -> Any:
    client = ctx.find_object(Ctx).client()  # type: ignore[union-attr]
    try:
        return action(client)
    except TwilioJobsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        client.close()


def dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value


def emit(value: Any, as_json: bool, table: Callable[[Any], Table | str]) -> None:
    if as_json:
        click.echo(json.dumps(dump(value), indent=2))
    else:
        console.print(table(value))


def rows(title: str, columns: Sequence[str], values: Iterable[Sequence[Any]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in values:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def record_table(record: Any) -> Table:
    fields = record.model_dump(mode="json", exclude={"result", "webhook"})
    if record.result is not None:
        to = record.result.get("contextWrites", {}).get("to")
        fields["result"] = to if isinstance(to, str) else record.result.get("callback")
    if record.webhook is not None:
        fields["webhook"] = f"{record.webhook.event} {record.webhook.status}"
    return rows(f"job {record.jobId}", ("field", "value"), fields.items())


def campaign_table(status: Any) -> Table:
    table = rows(
        f"campaign {status.campaignId} ({status.state})",
        ("field", "value"),
        [
            ("name", status.name), ("kind", status.kind.value), ("total", status.total),
            ("progress", f"{status.progress:.0%}"), ("rate", f"{status.sendRate:.1f}/s"),
            ("eta", f"{status.etaSeconds:.0f} s" if status.etaSeconds is not None else None),
            *((f"status {k}", v) for k, v in status.counts.items() if v),
            *((f"delivery {k}", v) for k, v in status.deliveryCounts.items() if v),
            *((f"error {e.code}", e.count) for e in status.topErrors),
        ],
    )  # fmt: skip
    return table


@click.group(name="twilio-jobs")
@click.option("--url", envvar="TWILIO_JOBS_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--api-key", envvar="TWILIO_JOBS_API_KEY", default=None)
@click.pass_context
def cli(ctx: click.Context, url: str, api_key: str | None) -> None:
    """Operate a twilio-jobs service over its HTTP API."""
    ctx.obj = Ctx(url, api_key)


# -- jobs ---------------------------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """Show, wait for, retry and cancel jobs."""


@jobs.command("show")
@click.argument("job_id")
@json_option
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    emit(run(ctx, lambda c: c.get(job_id)), as_json, record_table)


@jobs.command("list")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), default=None)
@click.option("--to", default=None, help="A recipient (E.164).")
@click.option("--campaign", "campaign_id", default=None)
@click.option("--error-code", type=int, default=None)
@click.option("--since", type=click.DateTime(), default=None, help="UTC")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def jobs_list(
    ctx: click.Context,
    status: str | None,
    to: str | None,
    campaign_id: str | None,
    error_code: int | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """Your jobs, newest first, by status, recipient, campaign, error code or time."""
    moment = since.replace(tzinfo=UTC) if since else None
    page = run(
        ctx,
        lambda c: c.list_jobs(
            status=status, to=to, campaign_id=campaign_id, error_code=error_code, since=moment,
            limit=limit,
        ),
    )  # fmt: skip
    emit(
        page,
        as_json,
        lambda p: rows(
            "jobs",
            ("job", "kind", "status", "created", "sid", "error"),
            [(j.jobId, j.kind.value, j.status.value, j.createdAt, j.twilioSid, j.errorCode)
             for j in p.jobs],
        ),
    )  # fmt: skip


@jobs.command("wait")
@click.argument("job_id")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@json_option
@click.pass_context
def jobs_wait(ctx: click.Context, job_id: str, timeout: float, as_json: bool) -> None:
    """Wait until the job is final; exit 1 unless it succeeded."""
    record = run(ctx, lambda c: c.wait(job_id, timeout=timeout))
    emit(record, as_json, record_table)
    if record.status != JobStatus.succeeded:
        sys.exit(1)


@jobs.command("retry")
@click.argument("job_id")
@click.option("--account-token", envvar="TWILIO_AUTH_TOKEN", default=None)
@json_option
@click.pass_context
def jobs_retry(ctx: click.Context, job_id: str, account_token: str | None, as_json: bool) -> None:
    """Run a failed job again (tokens are dropped when a job ends: give it again)."""
    emit(run(ctx, lambda c: c.retry(job_id, account_token)), as_json, record_table)


@jobs.command("cancel")
@click.argument("job_id")
@json_option
@click.pass_context
def jobs_cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
    emit(run(ctx, lambda c: c.cancel(job_id)), as_json, record_table)


# -- campaigns ----------------------------------------------------------------------------------


@cli.group()
def campaigns() -> None:
    """Show, pause, resume and cancel campaigns (`twilio-jobs campaign` uploads one)."""


@campaigns.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def campaigns_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Your campaigns, newest first."""
    page = run(ctx, lambda c: c.list_campaigns(limit=limit))
    emit(
        page,
        as_json,
        lambda p: rows(
            "campaigns",
            ("campaign", "name", "state", "total", "progress"),
            [(c.campaignId, c.name, c.state, c.total, f"{c.progress:.0%}") for c in p.campaigns],
        ),
    )


@campaigns.command("show")
@click.argument("campaign_id")
@json_option
@click.pass_context
def campaigns_show(ctx: click.Context, campaign_id: str, as_json: bool) -> None:
    emit(run(ctx, lambda c: c.campaign_status(campaign_id)), as_json, campaign_table)


def _campaign_action(name: str) -> None:
    @campaigns.command(name)
    @click.argument("campaign_id")
    @json_option
    @click.pass_context
    def action(ctx: click.Context, campaign_id: str, as_json: bool) -> None:
        status = run(ctx, lambda c: getattr(c, f"{name}_campaign")(campaign_id))
        emit(status, as_json, campaign_table)

    action.__doc__ = f"{name.title()} the campaign."


for _name in ("pause", "resume", "cancel"):
    _campaign_action(_name)


@campaigns.command("report")
@click.argument("campaign_id")
@click.option("-o", "--output", type=click.File("w"), default="-", help="A file (default: stdout).")
@click.pass_context
def campaigns_report(ctx: click.Context, campaign_id: str, output: Any) -> None:
    """The delivery report as CSV: one row per recipient."""
    output.write(run(ctx, lambda c: c.campaign_report(campaign_id)))


@campaigns.command("jobs")
@click.argument("campaign_id")
@click.option("--status", type=click.Choice([s.value for s in JobStatus]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@click.pass_context
def campaigns_jobs(
    ctx: click.Context, campaign_id: str, status: str | None, limit: int, as_json: bool
) -> None:
    """A page of the campaign's jobs."""
    state = JobStatus(status) if status else None
    page = run(ctx, lambda c: c.campaign_jobs(campaign_id, status=state, limit=limit))
    emit(
        page,
        as_json,
        lambda p: rows(
            f"campaign {campaign_id}",
            ("job", "status", "sid", "error"),
            [(j.jobId, j.status.value, j.twilioSid, j.errorCode) for j in p.jobs],
        ),
    )


# -- suppressions and webhooks ------------------------------------------------------------------


@cli.group()
def suppressions() -> None:
    """Recipients not to send to, per account and scope (your key must have proven the
    account)."""


@suppressions.command("list")
@click.argument("account_sid")
@click.option("--to", default=None)
@click.option("--sender", default=None, help="Only this scope: a from number, MG... or '*'.")
@click.option("--reason", type=click.Choice(REASONS), default=None)
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--cursor", type=int, default=0, show_default=True, help="From a nextCursor.")
@json_option
@click.pass_context
def suppressions_list(
    ctx: click.Context,
    account_sid: str,
    to: str | None,
    sender: str | None,
    reason: str | None,
    limit: int,
    cursor: int,
    as_json: bool,
) -> None:
    page = run(
        ctx,
        lambda c: c.list_suppressions(
            account_sid, to=to, limit=limit, cursor=cursor, sender=sender, reason=reason
        ),
    )
    emit(
        page,
        as_json,
        lambda p: rows(
            f"suppressions of {account_sid}"
            + (f" (next: --cursor {p.nextCursor})" if p.nextCursor else ""),
            ("to", "sender", "reason", "at"),
            [(s.to, s.sender, s.reason, s.at) for s in p.suppressions],
        ),
    )


@suppressions.command("add")
@click.argument("account_sid")
@click.argument("to")
@click.option(
    "--sender", default="*", show_default=True, help="A from number, MG... or '*' (the account)."
)
@click.option("--reason", type=click.Choice(REASONS), default="manual", show_default=True)
@json_option
@click.pass_context
def suppressions_add(
    ctx: click.Context, account_sid: str, to: str, sender: str, reason: str, as_json: bool
) -> None:
    added = run(ctx, lambda c: c.add_suppression(account_sid, to, sender, reason))
    emit(added, as_json, lambda s: f"suppressed {s.to} for {s.sender} ({s.reason})")


@suppressions.command("import")
@click.argument("account_sid")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@json_option
@click.pass_context
def suppressions_import(ctx: click.Context, account_sid: str, csv_file: Any, as_json: bool) -> None:
    """Add the rows of CSV_FILE ('-' for stdin): a header naming `to`, and optionally
    `sender` (default '*'), `reason` (default import) and `at`."""
    text = csv_file.read()
    imported = run(ctx, lambda c: c.import_suppressions(account_sid, text))
    emit({"imported": imported}, as_json, lambda v: f"imported {v['imported']}")


@suppressions.command("export")
@click.argument("account_sid")
@click.option("--output", "-o", type=click.File("w"), default="-", help="Default: stdout.")
@click.pass_context
def suppressions_export(ctx: click.Context, account_sid: str, output: Any) -> None:
    """Write the account's suppressions as CSV (to,sender,reason,at)."""
    output.write(run(ctx, lambda c: c.export_suppressions(account_sid)))


@suppressions.command("remove")
@click.argument("account_sid")
@click.argument("to")
@click.option("--sender", default=None, help="Only for this sender (default: every sender).")
@json_option
@click.pass_context
def suppressions_remove(
    ctx: click.Context, account_sid: str, to: str, sender: str | None, as_json: bool
) -> None:
    lifted = run(ctx, lambda c: c.lift_suppression(account_sid, to, sender))
    emit({"lifted": lifted}, as_json, lambda v: f"lifted {v['lifted']}")


@cli.group()
def webhooks() -> None:
    """Result webhooks that gave up, and replaying them."""


@webhooks.command("failed")
@click.option("--limit", type=int, default=100, show_default=True)
@json_option
@click.pass_context
def webhooks_failed(ctx: click.Context, limit: int, as_json: bool) -> None:
    failed = run(ctx, lambda c: c.failed_webhooks(limit))
    emit(
        failed,
        as_json,
        lambda items: rows(
            "failed webhook deliveries",
            ("job", "event", "url", "attempts", "last error", "failed at"),
            [(d.jobId, d.event, d.url, d.attempts, d.lastError, d.failedAt) for d in items],
        ),
    )


@webhooks.command("replay")
@click.argument("job_id")
@json_option
@click.pass_context
def webhooks_replay(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Deliver the job's latest webhook event again."""
    emit(run(ctx, lambda c: c.replay_webhook(job_id)), as_json, record_table)


def main(argv: list[str]) -> int:
    try:
        cli.main(args=argv, prog_name="twilio-jobs", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return 1
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        return 1
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
