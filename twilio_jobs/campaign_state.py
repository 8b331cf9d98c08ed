"""A campaign after it was accepted: its dashboard, its jobs page by page, pause/resume/cancel.

The state lives in the campaign hash (`state`: active | paused | cancelled) and every worker
reads it when a job starts (`twilio_jobs.gates`, inside the ledger claim and the pacing acquire), so
a change takes effect across all workers at once and survives restarts. Paused jobs park their
ids in a set that `resume` dispatches again; `cancel` ends every job not yet handed to Twilio.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

from redis import Redis

from twilio_jobs import counts, keys, lifecycle, scripts
from twilio_jobs.dispatch import Dispatcher
from twilio_jobs.errors import CampaignNotFound, Conflict
from twilio_jobs.lifecycle import FINAL_STATES, JobStatus
from twilio_jobs.pacing import current_limit
from twilio_jobs.schemas import CampaignJobs, CampaignStatus
from twilio_jobs.settings import Settings
from twilio_jobs.store import now_iso, render

CANCEL_CHUNK = 1000
PAGE_SCAN = 2000


class CampaignState:
    def __init__(self, settings: Settings, redis: Redis, dispatcher: Dispatcher) -> None:
        self.redis = redis
        self.settings = settings
        self.dispatcher = dispatcher
        self._transition = scripts.register(self.redis, "campaign_state")
        self._cancel = scripts.register(self.redis, "cancel")

    def _meta(self, campaign_id: str, owner: str | None) -> dict[str, str]:
        meta: dict[str, str] = self.redis.hgetall(keys.campaign(campaign_id))  # type: ignore[assignment]
        if not meta or (owner is not None and meta.get("owner", "") != owner):
            raise CampaignNotFound(campaign_id)
        return meta

    def status(self, campaign_id: str, *, owner: str | None = None) -> CampaignStatus:
        meta = self._meta(campaign_id, owner)
        now = time.time()
        raw: dict[str, str] = self.redis.hgetall(keys.campaign_counts(campaign_id))  # type: ignore[assignment]
        summary = counts.summarize(raw, now)
        total = int(meta.get("total", 0))
        remaining = max(0, total - summary["final"])
        state = meta.get("state", "active")
        if remaining == 0 and state != "cancelled":
            state = "completed"
        rate = summary["rate"]
        eta = round(remaining / rate, 1) if rate > 0 and remaining else None
        return CampaignStatus.model_validate(
            {
                "campaignId": campaign_id,
                "name": meta.get("name") or None,
                "kind": meta.get("kind"),
                "state": state,
                "createdAt": meta.get("createdAt"),
                "sendAt": meta.get("sendAt") or None,
                "total": total,
                "counts": summary["statuses"],
                "deliveryCounts": summary["delivery"],
                "progress": round((total - remaining) / total, 4) if total else 1.0,
                "sendRate": rate,
                "etaSeconds": 0.0 if remaining == 0 else eta,
                "topErrors": summary["topErrors"],
                "deliveryErrors": summary["deliveryErrors"],
                "pacing": current_limit(self.redis, meta.get("accountSid", ""), self.settings, now),
            }
        )

    def report(self, campaign_id: str, *, owner: str | None = None) -> Iterator[str]:
        """The delivery report as CSV lines, one row per recipient in recipient order: `to`,
        the template's variables, status, delivery status, error code, Twilio SID, times and
        the job id. Read a page at a time, so a 100,000-recipient report streams."""
        meta = self._meta(campaign_id, owner)
        names: list[str] = json.loads(meta.get("vars") or "[]")
        yield _csv_line(["to", *names, *REPORT_FIELDS, "jobId"])
        list_key = keys.campaign_jobs(campaign_id)
        start = 0
        while True:
            ids = [str(x) for x in self.redis.lrange(list_key, start, start + REPORT_PAGE - 1)]
            if not ids:
                return
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(keys.job(job_id), "params", "error", *REPORT_FIELDS)
            pipe.hmget(keys.campaign_vars(campaign_id), ids)
            *rows, values = pipe.execute()
            for job_id, row, raw_vars in zip(ids, rows, values, strict=True):
                if row[0] is None:
                    continue  # expired
                to = json.loads(row[0]).get("To", "")
                fields = dict(zip(REPORT_FIELDS, row[2:], strict=True))
                if not fields["errorCode"] and row[1]:
                    fields["errorCode"] = json.loads(row[1]).get("code")
                own = json.loads(raw_vars) if raw_vars else [""] * len(names)
                yield _csv_line([to, *own, *(fields[f] for f in REPORT_FIELDS), job_id])
            start += REPORT_PAGE

    def jobs(
        self,
        campaign_id: str,
        *,
        owner: str | None = None,
        status: JobStatus | None = None,
        cursor: int = 0,
        limit: int = 100,
    ) -> CampaignJobs:
        """A page of job records in recipient order; `nextCursor` is null at the end. With a
        status filter a page looks at up to PAGE_SCAN jobs, so it may hold fewer than `limit`."""
        self._meta(campaign_id, owner)
        list_key = keys.campaign_jobs(campaign_id)
        span = limit if status is None else max(limit, PAGE_SCAN)
        ids = [str(x) for x in self.redis.lrange(list_key, cursor, cursor + span - 1)]
        if status is not None:
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(keys.job(job_id), "status")
            statuses = pipe.execute()
            matching = []
            scanned = 0
            for job_id, current in zip(ids, statuses, strict=True):
                scanned += 1
                if current == status.value:
                    matching.append(job_id)
                    if len(matching) == limit:
                        break
            ids, used = matching, scanned
        else:
            used = len(ids)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(keys.job(job_id))
        records = [render(j, f) for j, f in zip(ids, pipe.execute(), strict=True) if f]
        total = int(self.redis.llen(list_key))
        following = cursor + used
        return CampaignJobs.model_validate(
            {"jobs": records, "nextCursor": str(following) if following < total else None}
        )

    def pause(self, campaign_id: str, *, owner: str | None = None) -> CampaignStatus:
        self._move(campaign_id, owner, "paused")
        return self.status(campaign_id, owner=owner)

    def resume(self, campaign_id: str, *, owner: str | None = None) -> CampaignStatus:
        parked = self._move(campaign_id, owner, "active")
        if parked:
            self.dispatcher.send_batches(parked, self.settings.batch_size)
        return self.status(campaign_id, owner=owner)

    def cancel(self, campaign_id: str, *, owner: str | None = None) -> CampaignStatus:
        """Cancel every job not handed to Twilio yet; jobs in flight finish."""
        self._meta(campaign_id, owner)
        self._move(campaign_id, owner, "cancelled")
        ended = lifecycle.ending(lifecycle.CANCELLED)
        list_key = keys.campaign_jobs(campaign_id)
        total = int(self.redis.llen(list_key))
        stamp = _stamp()
        for start in range(0, total, CANCEL_CHUNK):
            ids = [str(x) for x in self.redis.lrange(list_key, start, start + CANCEL_CHUNK - 1)]
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids:
                self._cancel(
                    keys=[keys.job(job_id), keys.SCHEDULE],
                    args=[stamp, ended["error"], ended["result"], job_id],
                    client=pipe,
                )
            pipe.execute()
        self.redis.delete(keys.campaign_parked(campaign_id))
        return self.status(campaign_id, owner=owner)

    def _move(self, campaign_id: str, owner: str | None, want: str) -> list[str]:
        self._meta(campaign_id, owner)
        reply = [
            str(x)
            for x in self._transition(
                keys=[keys.campaign(campaign_id), keys.campaign_parked(campaign_id)], args=[want]
            )
        ]
        outcome = reply[0]
        if outcome == "missing":
            raise CampaignNotFound(campaign_id)
        if outcome not in ("ok", "same") and not (want == "cancelled" and outcome == "cancelled"):
            raise Conflict(f"Campaign is {outcome}")
        return reply[1:]


REPORT_FIELDS = ("status", "deliveryStatus", "errorCode", "twilioSid", "createdAt", "updatedAt")
REPORT_PAGE = 1000


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return out.getvalue()


def _stamp() -> str:
    return now_iso()


__all__ = ["CampaignNotFound", "CampaignState", "FINAL_STATES"]
