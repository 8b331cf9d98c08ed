"""The job store: job records in Redis hashes, shared by the client library, the API and the worker.

A job hash (`keys.job(id)`) holds the public record fields (`status`, `attempts`, `createdAt`,
`updatedAt`, `campaignId`, `twilioSid`, `deliveryStatus`, `error`, `result`, `requestId`: the
`X-Request-Id` of the request that made it), and the private ones the API never shows: `kind`,
`params` (the Twilio form parameters, JSON), `accountSid`, `cred` (the auth token,
Fernet-encrypted, deleted when the job ends), `owner` (the tenant id, `twilio_jobs.tenancy`),
`ownCred` (`1` when that tenant supplied the token, so that a success proves the account to it),
`callbackUrl`, and the send ledger (`ledger`, `submittedAt`).
Webhooks and status callbacks add the public `webhook` (JSON: the latest delivery's state) and
`errorCode`, and the private `whLatest` (that delivery's id) and `deliveryRank`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from twilio_jobs import keys, lifecycle, scripts, tracing
from twilio_jobs.lifecycle import JobStatus, is_final
from twilio_jobs.schemas import JobKind, JobRecord

PUBLIC_JSON_FIELDS = ("error", "result", "webhook")
INDEX_SHA = hashlib.sha1(scripts.source("index_jobs").encode()).hexdigest()
FORGET = scripts.source("forget")  # sent whole (EVAL): it runs only when a write is refused


def now_iso(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(ts if ts is not None else time.time(), tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(job_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """The public job record of DESIGN.md from the raw hash."""
    record: dict[str, Any] = {
        "jobId": job_id,
        "kind": fields.get("kind"),
        "status": fields.get("status"),
        "attempts": int(fields.get("attempts", 0)),
        "createdAt": fields.get("createdAt"),
        "updatedAt": fields.get("updatedAt"),
        "campaignId": fields.get("campaignId") or None,
        "twilioSid": fields.get("twilioSid") or None,
        "deliveryStatus": fields.get("deliveryStatus") or None,
        "errorCode": int(fields["errorCode"]) if fields.get("errorCode") else None,
        "requestId": fields.get("requestId") or None,
        "error": None,
        "result": None,
    }
    for name in PUBLIC_JSON_FIELDS:
        raw = fields.get(name)
        if raw:
            record[name] = json.loads(raw)
    return record


class JobStore:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self._cancel = scripts.register(redis, "cancel")
        self._retry = scripts.register(redis, "reopen")

    def new_job_fields(
        self,
        kind: JobKind,
        params: Mapping[str, Any],
        account_sid: str,
        cred: str,
        *,
        status: JobStatus,
        owner: str = "",
        own_cred: bool = False,
        callback_url: str | None = None,
        campaign_id: str | None = None,
        request_id: str = "",
    ) -> dict[str, str]:
        stamp = now_iso()
        fields = {
            "kind": kind.value,
            "status": lifecycle.check(None, status).value,
            "attempts": "0",
            "createdAt": stamp,
            "updatedAt": stamp,
            "params": json.dumps(params, separators=(",", ":")),
            "accountSid": account_sid,
            "cred": cred,
            "owner": owner,
        }
        if own_cred and owner:
            fields["ownCred"] = "1"
        if callback_url:
            fields["callbackUrl"] = callback_url
        if campaign_id:
            fields["campaignId"] = campaign_id
        if request_id:
            fields["requestId"] = request_id
        trace = tracing.carrier()  # the accepting request's span: the worker's parent
        if trace:
            fields["trace"] = trace
        return fields

    def write(self, pipe: Any, job_id: str, fields: Mapping[str, str]) -> None:
        key = keys.job(job_id)
        pipe.hset(key, mapping=dict(fields))
        pipe.expire(key, self.ttl)

    def index(self, pipe: Any, entries: list[tuple[str, str, str, str]], created: float) -> None:
        """Enter new jobs, written by `write` in the same pipeline, in their tenants' indexes
        (`lua/index_jobs.lua`): one EVALSHA for any number of `(job id, owner, status,
        recipient digest)`. The script is loaded by `load_index` (EVALSHA in a pipeline skips
        redis-py's SCRIPT EXISTS round trip on every execute)."""
        flat = [x for entry in entries for x in entry]
        pipe.evalsha(INDEX_SHA, 0, self.ttl, f"{created:.3f}", *flat)

    def load_index(self) -> None:
        self.redis.script_load(scripts.source("index_jobs"))

    def raw(self, job_id: str) -> dict[str, str]:
        return self.redis.hgetall(keys.job(job_id))  # type: ignore[return-value]

    def record(self, job_id: str, owner: str | None = None) -> dict[str, Any] | None:
        fields = self.raw(job_id)
        if not fields or (owner is not None and fields.get("owner", "") != owner):
            return None
        return render(job_id, fields)

    def forget(self, pipe: Any, job_id: str, digest: str) -> None:
        """Take back, in `pipe`, a job written but not accepted (`lua/forget.lua`): its
        record, schedule entry, index entries and stats count, unless it had moved on."""
        pipe.eval(FORGET, 2, keys.job(job_id), keys.SCHEDULE, job_id, digest)

    def cancel(self, job_id: str, error: str, result: str) -> str:
        return str(
            self._cancel(
                keys=[keys.job(job_id), keys.SCHEDULE], args=[now_iso(), error, result, job_id]
            )
        )

    def reopen(self, job_id: str, cred: str, *, own_cred: bool = False) -> str:
        return str(
            self._retry(keys=[keys.job(job_id)], args=[now_iso(), cred, "1" if own_cred else "0"])
        )

    def schedule(self, pipe: Any, job_id: str, due: float) -> None:
        pipe.zadd(keys.SCHEDULE, {job_id: due})


__all__ = ["JobRecord", "JobStore", "now_iso", "render", "is_final"]
