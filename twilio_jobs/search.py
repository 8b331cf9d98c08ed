"""Search and lists over a tenant's jobs and campaigns, read from the indexes that the lifecycle
keeps (`lua/lifecycle.lua`: `tj_move` and the creation scripts).

Each index is a sorted set of job ids scored by creation time (unix seconds), per tenant: all of
its jobs, one per status, per campaign, per recipient bucket (named by a keyed digest of the number,
`Cipher.digest`, never the number) and per Twilio error code. A query walks the most selective
index that applies, newest first, within `since`/`until`, and checks the other filters on each
record. The cursor is `<score>:<skip>`: continue at that score, past `skip` ids that had it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis import Redis

from twilio_jobs import keys
from twilio_jobs.crypto import Cipher
from twilio_jobs.errors import InvalidRequest
from twilio_jobs.lifecycle import JobStatus
from twilio_jobs.store import render

PAGE_SCAN = 2000
"""At most this many index entries are looked at for one page; a page with filters beyond the
index it walks may hold fewer than `limit` records and still have a `nextCursor`."""

CURSOR = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?):([0-9]{1,9})")


@dataclass(frozen=True)
class JobQuery:
    status: JobStatus | None = None
    to: str | None = None
    campaign_id: str | None = None
    error_code: int | None = None
    since: datetime | None = None
    until: datetime | None = None


def _bound(moment: datetime | None, default: str) -> str:
    return default if moment is None else repr(moment.timestamp())


def parse_cursor(cursor: str | None) -> tuple[float, int] | None:
    if not cursor:
        return None
    match = CURSOR.fullmatch(cursor)
    if not match:
        raise InvalidRequest("Invalid cursor: pass the nextCursor of the previous page")
    return float(match.group(1)), int(match.group(2))


def _error_codes(fields: Mapping[str, str]) -> set[int]:
    codes = set()
    if fields.get("errorCode", "").isdigit():
        codes.add(int(fields["errorCode"]))
    raw = fields.get("error")
    if raw:
        try:
            code = json.loads(raw).get("code")
        except (ValueError, AttributeError):
            code = None
        if isinstance(code, int):
            codes.add(code)
    return codes


def _recipient(fields: Mapping[str, str]) -> str | None:
    try:
        to = json.loads(fields.get("params") or "{}").get("To")
    except (ValueError, AttributeError):
        return None
    return to if isinstance(to, str) else None


class Search:
    def __init__(self, redis: Redis, cipher: Cipher) -> None:
        self.redis = redis
        self.cipher = cipher

    def _driver(self, owner: str, query: JobQuery) -> str:
        """The index to walk: the most selective one the query names."""
        if query.to:
            return keys.index_to(owner, self.cipher.digest(query.to))
        if query.campaign_id:
            return keys.index_campaign(owner, query.campaign_id)
        if query.error_code is not None:
            return keys.index_error(owner, str(query.error_code))
        if query.status is not None:
            return keys.index_status(owner, query.status.value)
        return keys.index_all(owner)

    def _matches(self, fields: Mapping[str, str], owner: str, query: JobQuery) -> bool:
        if fields.get("owner", "") != owner:
            return False
        if query.status is not None and fields.get("status") != query.status.value:
            return False
        if query.campaign_id and fields.get("campaignId", "") != query.campaign_id:
            return False
        if query.error_code is not None and query.error_code not in _error_codes(fields):
            return False
        return not query.to or _recipient(fields) == query.to

    def jobs(
        self, owner: str, query: JobQuery, *, cursor: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """`{"jobs": [records], "nextCursor": str | None}`, newest first."""
        driver = self._driver(owner, query)
        low = _bound(query.since, "-inf")
        high = _bound(query.until, "+inf")
        skip = 0  # ids with score `high` already consumed (they come first in the range)
        start = parse_cursor(cursor)
        if start is not None and (high == "+inf" or start[0] < float(high)):
            high, skip = repr(start[0]), start[1]
        found: list[dict[str, Any]] = []
        scanned = 0
        exhausted = False
        while len(found) < limit and scanned < PAGE_SCAN:
            span = min(max(limit - len(found), 50), PAGE_SCAN - scanned)
            entries = cast(
                list[tuple[str, float]],
                self.redis.zrevrangebyscore(
                    driver, high, low, start=skip, num=span, withscores=True
                ),
            )
            pipe = self.redis.pipeline(transaction=False)
            for job_id, _ in entries:
                pipe.hgetall(keys.job(str(job_id)))
            rows = pipe.execute() if entries else []
            consumed = 0
            for (job_id, score), fields in zip(entries, rows, strict=True):
                consumed += 1
                if score == float(high.replace("+inf", "inf")):
                    skip += 1
                else:
                    high, skip = repr(score), 1
                if fields and self._matches(fields, owner, query):
                    found.append(render(str(job_id), fields))
                    if len(found) == limit:
                        break
            scanned += consumed
            if len(entries) < span and consumed == len(entries):
                exhausted = True
                break
        if exhausted or scanned == 0:
            return {"jobs": found, "nextCursor": None}
        return {"jobs": found, "nextCursor": f"{high}:{skip}"}

    def campaign_ids(
        self, owner: str, *, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[str], str | None]:
        """The tenant's campaign ids, newest first, and the next page's cursor."""
        high, skip = "+inf", 0
        start = parse_cursor(cursor)
        if start is not None:
            high, skip = repr(start[0]), start[1]
        entries = cast(
            list[tuple[str, float]],
            self.redis.zrevrangebyscore(
                keys.index_campaigns(owner),
                high,
                "-inf",
                start=skip,
                num=limit + 1,
                withscores=True,
            ),
        )
        page = entries[:limit]
        following = None
        if len(entries) > limit and page:
            score = page[-1][1]
            same = sum(1 for _, s in page if s == score)
            if start is not None and score == start[0]:
                same += skip
            following = f"{score!r}:{same}"
        return [str(c) for c, _ in page], following

    def overview(self, owner: str, now: float | None = None) -> dict[str, Any]:
        """What the indexes tell at a glance: jobs per status, jobs created in the last minute
        and five, the age of the oldest queued job, the error ratio of ended jobs."""
        now = time.time() if now is None else now
        pipe = self.redis.pipeline(transaction=False)
        for status in JobStatus:
            pipe.zcard(keys.index_status(owner, status.value))
        pipe.zcount(keys.index_all(owner), now - 60, "+inf")
        pipe.zcount(keys.index_all(owner), now - 300, "+inf")
        pipe.zrange(keys.index_status(owner, JobStatus.queued.value), 0, 0, withscores=True)
        pipe.zcount(keys.index_status(owner, JobStatus.succeeded.value), now - 300, "+inf")
        pipe.zcount(keys.index_status(owner, JobStatus.failed.value), now - 300, "+inf")
        replies = pipe.execute()
        counts = {s.value: int(n) for s, n in zip(JobStatus, replies, strict=False)}
        minute, five, oldest, ok5, failed5 = replies[len(counts) :]
        ended = counts["succeeded"] + counts["failed"]
        return {
            "counts": counts,
            "createdLastMinute": int(minute),
            "createdPerSecond5m": round(int(five) / 300, 2),
            "oldestQueuedSeconds": round(now - float(oldest[0][1]), 1) if oldest else None,
            "errorRatio": round(counts["failed"] / ended, 4) if ended else None,
            "errorRatio5m": round(int(failed5) / (int(ok5) + int(failed5)), 4)
            if int(ok5) + int(failed5)
            else None,
        }


__all__ = ["PAGE_SCAN", "JobQuery", "Search", "parse_cursor"]
