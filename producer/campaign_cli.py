"""`twilio-jobs campaign FILE.csv ...`: upload a campaign to the HTTP API, with progress bars.

The CSV has a `to` column and one column per template variable. The upload is streamed, with a
bar for the bytes sent; `--watch` then follows the campaign until it ends.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from twilio_jobs.campaigns import estimate_text
from twilio_jobs.http_client import HttpClient
from twilio_jobs.schemas import CampaignAccepted

FINAL = ("succeeded", "failed", "cancelled", "suppressed")
UPLOAD_PIECE = 64 * 1024


def add_parser(sub: Any) -> None:
    p = sub.add_parser("campaign", help="send a campaign from a CSV file (column 'to' + variables)")
    p.add_argument("csv", help="CSV file with a header row; a 'to' column is required")
    p.add_argument("--api", default=os.environ.get("TWILIO_JOBS_API_URL", "http://127.0.0.1:8000"))
    p.add_argument("--api-key", default=os.environ.get("TWILIO_JOBS_API_KEY"))
    p.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID"))
    p.add_argument("--account-token", default=os.environ.get("TWILIO_AUTH_TOKEN"))
    p.add_argument("--kind", choices=("sendSms", "sendMms", "makeCall"), default="sendSms")
    p.add_argument("--from", dest="from_")
    p.add_argument("--messaging-service-sid")
    p.add_argument("--body", help="text with {{column}} placeholders")
    p.add_argument("--media-url")
    p.add_argument("--url", help="TwiML URL (makeCall)")
    p.add_argument("--default-region", help="ISO country of numbers in national format, e.g. US")
    p.add_argument("--send-at", help="ISO 8601")
    p.add_argument("--name")
    p.add_argument("--dry-run", action="store_true", help="validate and estimate only")
    p.add_argument("--watch", action="store_true", help="follow the campaign until it ends")


def read_recipients(path: str) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [dict(row) for row in csv.DictReader(handle)]


def build_body(args: argparse.Namespace, recipients: list[dict[str, str]]) -> dict[str, Any]:
    fields = {
        "accountSid": args.account_sid, "accountToken": args.account_token, "kind": args.kind,
        "from": args.from_, "messagingServiceSid": args.messaging_service_sid,
        "body": args.body, "mediaUrl": args.media_url, "url": args.url,
        "defaultRegion": args.default_region, "sendAt": args.send_at, "name": args.name,
    }  # fmt: skip
    return {**{k: v for k, v in fields.items() if v is not None}, "recipients": recipients}


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    recipients = read_recipients(args.csv)
    payload = json.dumps(build_body(args, recipients)).encode()
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    with httpx.Client(base_url=args.api, headers=headers, timeout=120) as http:
        answer = _upload(http, payload, args.dry_run, len(recipients))
        if answer.status_code >= 400:
            console.print(f"[red]{answer.status_code}[/red] {answer.text}")
            return 1
        result = CampaignAccepted.model_validate_json(answer.content)
        rejected = result.rejected
        console.print(
            f"accepted {result.accepted}, rejected {len(rejected)}, duplicates {result.duplicates}"
        )
        for row in rejected[:20]:
            console.print(f"  row {row['index']}: {row.get('to')!r}: {row['reason']}")
        if len(rejected) > 20:
            console.print(f"  ... and {len(rejected) - 20} more")
        if args.dry_run:
            segments = result.segments
            if segments:
                console.print(f"segments: {segments['total']} ({segments['messages']})")
            console.print(f"estimated send time: {estimate_text(result.estimatedSeconds or 0)}")
            return 0
        campaign_id = str(result.campaignId)
        print(campaign_id)
        if args.watch:
            return _watch(HttpClient(http=http), campaign_id, console)
    return 0


def _upload(http: httpx.Client, payload: bytes, dry_run: bool, rows: int) -> httpx.Response:
    columns = [
        TextColumn(f"upload {rows} recipients"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("upload", total=len(payload))

        def pieces() -> Iterator[bytes]:
            for start in range(0, len(payload), UPLOAD_PIECE):
                piece = payload[start : start + UPLOAD_PIECE]
                yield piece
                bar.advance(task, len(piece))

        return http.post(
            "/api/campaigns",
            content=pieces(),
            params={"dryRun": "true"} if dry_run else None,
            headers={"Content-Length": str(len(payload))},
        )


def _watch(jobs: HttpClient, campaign_id: str, console: Console) -> int:
    status = jobs.campaign_status(campaign_id)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    ]
    with Progress(*columns, TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("sending", total=status.total)
        while True:
            status = jobs.campaign_status(campaign_id)
            done = sum(status.counts[s] for s in FINAL)
            bar.update(task, completed=done, description=f"{status.state} {status.sendRate:.1f}/s")
            if status.state in ("completed", "cancelled") and done >= status.total:
                break
            if status.state == "cancelled" and not status.counts["running"]:
                break
            time.sleep(1.0)
    console.print(
        json.dumps(status.model_dump(mode="json", include={"state", "counts", "topErrors"}))
    )
    return 0 if not status.counts["failed"] else 3


__all__ = ["add_parser", "run"]
