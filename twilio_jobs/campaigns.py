"""Bulk campaigns: one request, up to 100,000 recipients, each becoming a normal job record.

    from twilio_jobs import Client
    jobs = Client()
    answer = jobs.create_campaign(
        account_sid="AC...", account_token="...", from_="+15005550006",
        body="Hi {{name}}", recipients=[{"to": "+14155550100", "name": "Ann"}, ...])
    jobs.campaign_status(answer.campaignId)   # a CampaignStatus

The request is validated once as a send request of its `kind` (so every rule and Twilio field
of the single routes applies), the token is encrypted once and the one ciphertext shared by the
campaign's jobs, and the jobs are written with pipelined Redis writes and dispatched as chunks
of ids (`twilio_jobs.send_batch`) while the rest is still being written. Status, paging and
pause/resume/cancel are in `twilio_jobs.campaign_state`.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis import Redis

from twilio_jobs import keys, scripts, submission
from twilio_jobs.crypto import Cipher
from twilio_jobs.dispatch import Dispatcher
from twilio_jobs.errors import Conflict, InvalidRequest
from twilio_jobs.pacing import account_cap, sender_of, sender_rate
from twilio_jobs.recipients import Template, normalise, segments
from twilio_jobs.schemas import MAX_BODY, CampaignAccepted, JobKind, JobStatus, twilio_params
from twilio_jobs.settings import Settings
from twilio_jobs.store import JobStore, now_iso
from twilio_jobs.windows import SendWindow, WindowError, resolve

WRITE_CHUNK = 2000

TYPICAL_LATENCY = 0.2
"""Seconds a Twilio create usually takes; bounds the estimate by the in-flight limit."""

Progress = Callable[[int, int], None]

IDEMPOTENT_WAIT = 120.0
"""Seconds a repeat waits for the first request with its key to be accepted."""

CAMPAIGN_KINDS = frozenset({JobKind.sendSms, JobKind.sendMms, JobKind.makeCall})


class CampaignRequest(BaseModel):
    """A campaign. Further fields are those of the single send route of `kind` (`statusCallback`,
    `validityPeriod`, `twiml`, ...) and apply to every recipient."""

    model_config = ConfigDict(extra="allow", populate_by_name=False)

    accountSid: str | None = Field(default=None, max_length=64)
    accountToken: str | None = Field(default=None, max_length=128)
    kind: JobKind = JobKind.sendSms
    from_: str | None = Field(default=None, alias="from", max_length=256)
    messagingServiceSid: str | None = Field(default=None, max_length=256)
    body: str | None = Field(default=None, max_length=MAX_BODY)
    mediaUrl: str | list[str] | None = None
    url: str | None = None
    sendAt: datetime | None = None
    sendWindow: SendWindow | None = None
    callbackUrl: str | None = None
    name: str | None = Field(default=None, max_length=200)
    defaultRegion: str | None = Field(default=None, min_length=2, max_length=2)
    recipients: list[Any] = Field(min_length=1)

    @field_validator("kind")
    @classmethod
    def _campaign_kind(cls, value: JobKind) -> JobKind:
        if value not in CAMPAIGN_KINDS:
            raise ValueError("a campaign sends sendSms, sendMms or makeCall")
        return value


def new_campaign_id() -> str:
    return "CP" + secrets.token_hex(16)


class Campaigns:
    """Campaign creation: the validation of a single send, then pipelined writes of the job
    records (`store`, the token encrypted once by `cipher`) and chunks for `dispatcher`."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        store: JobStore,
        cipher: Cipher,
        dispatcher: Dispatcher,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.store = store
        self.cipher = cipher
        self.dispatcher = dispatcher

    def create_once(
        self,
        payload: Mapping[str, Any] | CampaignRequest,
        *,
        owner: str = "",
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> tuple[CampaignAccepted, bool]:
        """`create`, once per idempotency key (the `Idempotency-Key` header or the request's
        `idempotencyKey`), for 24 hours: the same key with the same request answers with the
        first answer (and False: nothing new was created); with another request, 409."""
        request = self._parse(payload)
        key = idempotency_key or (request.model_extra or {}).get("idempotencyKey")
        if not key:
            return self.create(request, owner=owner, progress=progress), True
        shown = request.model_dump(mode="json", exclude={"accountToken"})
        shown.pop("idempotencyKey", None)
        digest = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
        slot = keys.idempotency(owner, f"campaign:{key}")
        if self.redis.set(slot, f"{digest} pending", nx=True, ex=keys.IDEMPOTENCY_TTL):
            try:
                answer = self.create(request, owner=owner, progress=progress)
            except BaseException:
                self.redis.delete(slot)
                raise
            self.redis.set(slot, f"{digest} {answer.model_dump_json()}", ex=keys.IDEMPOTENCY_TTL)
            return answer, True
        deadline = time.monotonic() + IDEMPOTENT_WAIT
        while True:
            stored = str(self.redis.get(slot) or "")
            first, _, body = stored.partition(" ")
            if stored and first != digest:
                raise Conflict("Idempotency key was already used with a different request")
            if body and body != "pending":
                return CampaignAccepted.model_validate_json(body), False
            if not stored or time.monotonic() > deadline:
                raise Conflict("A campaign with this idempotency key is still being accepted")
            time.sleep(0.05)

    def create(
        self,
        payload: Mapping[str, Any] | CampaignRequest,
        *,
        owner: str = "",
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> CampaignAccepted:
        request = self._parse(payload)
        if len(request.recipients) > self.settings.campaign_max_recipients:
            raise InvalidRequest(
                f"A campaign takes at most {self.settings.campaign_max_recipients} recipients"
            )
        kind = request.kind
        single = self._single_request(request)
        account_sid, token = submission.credentials(single, self.settings)
        due = submission.due(request.sendAt)
        base = {k: v for k, v in twilio_params(single).items() if k not in ("To", "Body")}
        template = Template(request.body) if request.body is not None else None
        names = template.names if template is not None else []
        variables: dict[str, list[str]] = {}  # by recipient, for the delivery report

        rejected: list[dict[str, Any]] = []
        seen: set[str] = set()
        duplicates = unknown_ranges = 0
        jobs: list[dict[str, Any]] = []
        region = request.defaultRegion.upper() if request.defaultRegion else None
        window = request.sendWindow or self.settings.default_send_window
        now = time.time()
        earliest = due if due is not None else now
        # Per accepted job: its `window` field and due time (None: now), as in Client.submit.
        timing: list[tuple[str, float | None]] = []
        for index, row in enumerate(request.recipients):
            if not isinstance(row, dict):
                rejected.append({"index": index, "reason": "recipient must be an object"})
                continue
            to, reason, known = normalise(row.get("to"), region)
            if reason:
                rejected.append({"index": index, "to": row.get("to"), "reason": reason})
                continue
            if to in seen:
                duplicates += 1
                continue
            params = dict(base)
            params["To"] = to
            if template is not None:
                try:
                    body = template.render({**row, "to": to})
                except KeyError as missing:
                    reason = f"missing variable '{missing.args[0]}'"
                    rejected.append({"index": index, "to": to, "reason": reason})
                    continue
                if len(body) > MAX_BODY:
                    reason = f"body over {MAX_BODY} characters after filling the template"
                    rejected.append({"index": index, "to": to, "reason": reason})
                    continue
                params["Body"] = body
            when: tuple[str, float | None] = ("", due)
            if window is not None:
                try:
                    resolved, at = resolve(window, to, datetime.fromtimestamp(earliest, UTC))
                except WindowError as exc:
                    rejected.append({"index": index, "to": to, "reason": str(exc)})
                    continue
                opens = at.timestamp()  # `earliest` itself when open then
                when = (resolved.dumps(), opens if opens > earliest + 0.001 else due)
            seen.add(to)
            if names:
                variables[to] = ["" if row.get(n) is None else str(row[n]) for n in names]
            jobs.append(params)
            timing.append(when)
            unknown_ranges += not known

        answer = CampaignAccepted(
            campaignId=None, accepted=len(jobs), rejected=rejected, duplicates=duplicates
        )
        if dry_run:
            answer.dryRun = True
            answer.unknownRanges = unknown_ranges
            answer.segments = _segment_counts(kind, jobs)
            answer.estimatedSeconds = self._estimate(kind, account_sid, base, jobs)
            if window is not None:
                answer.deferred = sum(
                    1 for _, at in timing if at is not None and at > earliest + 0.001
                )
                answer.etaSeconds = _windowed_eta(
                    timing, earliest, answer.estimatedSeconds / max(1, len(jobs)), now
                )
            return answer
        if not jobs:
            raise InvalidRequest("No valid recipients")
        campaign_id = new_campaign_id()
        self._write(
            campaign_id, request, kind, account_sid, token, base, jobs, timing, owner, due,
            progress, names, variables,
        )  # fmt: skip
        answer.campaignId = campaign_id
        answer.statusUrl = f"/api/campaigns/{campaign_id}"
        return answer

    # -- steps ---------------------------------------------------------------------------------

    @staticmethod
    def _parse(payload: Mapping[str, Any] | CampaignRequest) -> CampaignRequest:
        if isinstance(payload, CampaignRequest):
            return payload
        try:
            return CampaignRequest.model_validate(payload)
        except ValidationError as exc:
            raise InvalidRequest(submission.describe_errors(exc.errors())) from None

    def _single_request(self, request: CampaignRequest) -> Any:
        """The campaign as one send request of its kind, to a stand-in recipient."""
        fields = request.model_dump(
            by_alias=True,
            exclude_none=True,
            exclude={"kind", "recipients", "name", "defaultRegion", "sendAt", "sendWindow"},
        )
        fields["to"] = "+14155550100"
        if request.sendAt is not None:
            fields["sendAt"] = request.sendAt
        return submission.validate(request.kind, fields)

    def _estimate(
        self, kind: JobKind, account_sid: str, base: Mapping[str, Any], jobs: list[Any]
    ) -> float:
        if kind is JobKind.makeCall:
            per_second = self.settings.calls_per_second
        else:
            per_second = sender_rate(sender_of(base), self.settings)
        by_rate = len(jobs) / per_second if per_second > 0 else 0.0
        by_in_flight = len(jobs) * TYPICAL_LATENCY / account_cap(account_sid, self.settings)
        return round(max(by_rate, by_in_flight), 1)

    def _write(
        self,
        campaign_id: str,
        request: CampaignRequest,
        kind: JobKind,
        account_sid: str,
        token: str,
        base: Mapping[str, Any],
        jobs: list[dict[str, Any]],
        timing: list[tuple[str, float | None]],
        owner: str,
        due: float | None,
        progress: Progress | None,
        names: list[str],
        variables: Mapping[str, list[str]],
    ) -> None:
        store = self.store
        ttl = self.settings.result_ttl + 24 * 3600
        cred = self.cipher.encrypt(token)  # once: the campaign's jobs share this ciphertext
        own_cred = bool(request.accountToken)
        callback = request.callbackUrl or self.settings.default_callback_url
        meta: dict[Any, Any] = {
            "kind": kind.value,
            "accountSid": account_sid,
            "sender": sender_of(base) if kind is not JobKind.makeCall else "calls",
            "state": "active",
            "total": str(len(jobs)),
            "createdAt": now_iso(),
            "owner": owner,
            "name": request.name or "",
            "sendAt": now_iso(due) if due else "",
            "vars": json.dumps(names),
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.campaign(campaign_id), mapping=meta)
        pipe.expire(keys.campaign(campaign_id), ttl)
        pipe.sadd(keys.CAMPAIGNS_RUNNING, campaign_id)
        listed = keys.index_campaigns(owner)  # the tenant's campaigns (twilio_jobs.search)
        created = time.time()
        pipe.zadd(listed, {campaign_id: created})
        pipe.zremrangebyscore(listed, "-inf", f"({created - ttl}")
        pipe.expire(listed, ttl)
        pipe.execute()
        write_jobs = scripts.register(self.redis, "write_jobs")
        # Watchdog entries (see Client.submit): a batch message lost by the broker is handed
        # out again, but only well after the campaign should have been sent, so a slow-paced
        # campaign is not queued twice over.
        watchdog = (
            time.time()
            + self.settings.requeue_after
            + 2 * self._estimate(kind, account_sid, base, jobs)
        )
        # Jobs sharing a send window (its zones) and due time are written together.
        groups: dict[tuple[str, float | None], list[dict[str, Any]]] = {}
        for params, when in zip(jobs, timing, strict=True):
            groups.setdefault(when, []).append(params)
        parts = [
            (window, at, group[start : start + WRITE_CHUNK])
            for (window, at), group in groups.items()
            for start in range(0, len(group), WRITE_CHUNK)
        ]
        done = 0
        for window, due, chunk in parts:
            status = JobStatus.scheduled if due else JobStatus.queued
            ids = [submission.new_job_id() for _ in chunk]
            shared = store.new_job_fields(
                kind, {}, account_sid, cred, status=status, owner=owner,
                own_cred=own_cred, callback_url=callback, campaign_id=campaign_id,
            )  # fmt: skip
            del shared["params"]
            if window:
                shared["window"] = window
            flat = json.dumps([x for pair in shared.items() for x in pair])
            args: list[Any] = [flat, store.ttl, f"{time.time():.3f}"]
            for job_id, params in zip(ids, chunk, strict=True):
                to = params.get("To")
                digest = self.cipher.digest(to) if isinstance(to, str) and to else ""
                args += (job_id, json.dumps(params, separators=(",", ":")), digest)
            pipe = self.redis.pipeline(transaction=False)
            write_jobs(args=args, client=pipe)
            pipe.zadd(keys.SCHEDULE, dict.fromkeys(ids, due or watchdog))
            pipe.rpush(keys.campaign_jobs(campaign_id), *ids)
            if names:
                pipe.hset(
                    keys.campaign_vars(campaign_id),
                    mapping={
                        job_id: json.dumps(variables[params["To"]], separators=(",", ":"))
                        for job_id, params in zip(ids, chunk, strict=True)
                    },
                )
            pipe.hincrby(keys.campaign_counts(campaign_id), status.value, len(ids))
            if done == 0:
                pipe.expire(keys.campaign_jobs(campaign_id), ttl)
                pipe.expire(keys.campaign_counts(campaign_id), ttl)
                pipe.expire(keys.campaign_vars(campaign_id), ttl)
            pipe.execute()
            if not due:
                self.dispatcher.send_batches(ids, self.settings.batch_size)
            done += len(chunk)
            if progress is not None:
                progress(done, len(jobs))


def _windowed_eta(
    timing: list[tuple[str, float | None]], earliest: float, per_job: float, now: float
) -> float:
    """Seconds from `now` until the last job is expected sent: the jobs of each due time
    start when it comes (or when the ones before are done), `per_job` seconds apart."""
    counts: dict[float, int] = {}
    for _, at in timing:
        start = at if at is not None else earliest
        counts[start] = counts.get(start, 0) + 1
    finish = now
    for start in sorted(counts):
        finish = max(finish, start) + counts[start] * per_job
    return round(finish - now, 1)


def _segment_counts(kind: JobKind, jobs: list[dict[str, Any]]) -> dict[str, Any] | None:
    if kind is JobKind.makeCall:
        return None
    encodings = {"GSM-7": 0, "UCS-2": 0}
    total = largest = 0
    for params in jobs:
        encoding, count = segments(str(params.get("Body", "")))
        encodings[encoding] += 1
        total += count
        largest = max(largest, count)
    return {"messages": encodings, "total": total, "maxPerMessage": largest}


def estimate_text(seconds: float) -> str:
    minutes, secs = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


__all__ = ["CampaignAccepted", "CampaignRequest", "Campaigns", "estimate_text"]
