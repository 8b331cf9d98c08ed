"""The Python client library: validate a request, store the job, enqueue its id.

Usable from any web app with no HTTP hop and without the worker or twilio installed::

    from twilio_jobs import Client
    jobs = Client()                      # settings from the environment
    accepted = jobs.send_sms(to="+15005550006", from_="+15005550001", body="hi",
                             account_sid="AC...", account_token="...")
    record = jobs.wait(accepted.jobId, timeout=10)   # a JobRecord

Every operation answers with the record the HTTP API answers with (`twilio_jobs.schemas`:
`Accepted`, `JobRecord`, `CampaignAccepted`, `CampaignStatus`, `CampaignJobs`,
`FailedDelivery`, `SuppressionPage`), as `HttpClient` does, so code can move from one client
to the other. The HTTP API calls this class too: one validation and one code path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any
from weakref import WeakKeyDictionary

import redis
from redis import Redis

from twilio_jobs import bulk, connections, keys, lifecycle, submission
from twilio_jobs.bulk import BulkOutcome, JobFilter
from twilio_jobs.campaign_state import CampaignState
from twilio_jobs.campaigns import Campaigns
from twilio_jobs.crypto import Cipher
from twilio_jobs.dispatch import Dispatcher
from twilio_jobs.errors import (
    CREDENTIALS_REQUIRED,
    REPLICAS_SHORT,
    CampaignNotFound,
    Conflict,
    InvalidRequest,
    JobNotFound,
    ServiceUnavailable,
)
from twilio_jobs.lifecycle import JobStatus
from twilio_jobs.outbox import Outbox
from twilio_jobs.schemas import (
    Accepted,
    CampaignAccepted,
    CampaignJobs,
    CampaignPage,
    CampaignStatus,
    FailedDelivery,
    JobKind,
    JobPage,
    JobRecord,
    Suppression,
    SuppressionPage,
    _SendBase,
    twilio_params,
)
from twilio_jobs.search import JobQuery, Search
from twilio_jobs.settings import Settings, get_settings
from twilio_jobs.store import JobStore
from twilio_jobs.submission import describe_errors, new_job_id
from twilio_jobs.suppressions import Suppressions
from twilio_jobs.tenancy import AccountRegistry, owner_of
from twilio_jobs.writer import JobWriter


@dataclass(frozen=True)
class Submission:
    job_id: str
    status: JobStatus
    created: bool

    @property
    def accepted(self) -> Accepted:
        """The send routes' answer."""
        return Accepted(jobId=self.job_id, status=self.status, statusUrl=status_url(self.job_id))


def status_url(job_id: str) -> str:
    return f"/api/jobs/{job_id}"


class Client:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        redis_client: Redis | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        if self.settings.secret_key is None:
            raise RuntimeError("TWILIO_JOBS_SECRET_KEY is required (32 or more characters)")
        self.cipher = Cipher.of(self.settings.secret_keys)
        self.redis = redis_client or connections.redis_client(
            self.settings.store_url, decode_responses=True, health_check_interval=10
        )
        self.store = JobStore(self.redis, self.settings.result_ttl)
        self.dispatcher = dispatcher or Dispatcher(self.settings)
        self.webhooks = Outbox(self.redis, self.settings, self.dispatcher.send_webhooks)
        # `asubmit` opens its own connections to the same server, so not with an injected client.
        self._async_ok = redis_client is None
        self._index_loaded = False
        self._writers: WeakKeyDictionary[asyncio.AbstractEventLoop, JobWriter] = WeakKeyDictionary()

    # -- sending -------------------------------------------------------------------------------

    def send(
        self, kind: JobKind, idempotency_key: str | None = None, *, owner: str = "", **fields: Any
    ) -> Accepted:
        """Queue a job of `kind`; `fields` are the route's body in snake_case (`from_`,
        `account_sid`, `status_callback`, ...)."""
        payload = submission.camel(fields)
        return self.submit(kind, payload, idempotency_key=idempotency_key, owner=owner).accepted

    def send_sms(self, **fields: Any) -> Accepted:
        return self.send(JobKind.sendSms, **fields)

    def send_mms(self, **fields: Any) -> Accepted:
        return self.send(JobKind.sendMms, **fields)

    def make_call(self, **fields: Any) -> Accepted:
        return self.send(JobKind.makeCall, **fields)

    def start_verification(self, **fields: Any) -> Accepted:
        """Twilio Verify v2: `service_sid`, `to`, `channel` (sms, call, whatsapp, email)..."""
        return self.send(JobKind.startVerification, **fields)

    def validate(self, kind: JobKind, payload: Mapping[str, Any] | _SendBase) -> _SendBase:
        return submission.validate(kind, payload)

    def submit(
        self,
        kind: JobKind,
        payload: Mapping[str, Any] | _SendBase,
        *,
        idempotency_key: str | None = None,
        owner: str = "",
        request_id: str = "",
    ) -> Submission:
        request = self.validate(kind, payload)
        account_sid, token = self._credentials(request)
        params = twilio_params(request)
        due = submission.due(request.sendAt)
        window, due = submission.windowed(kind, request, self.settings, due, time.time())
        key = idempotency_key or request.idempotencyKey
        job_id = new_job_id()
        if key:
            existing = self._claim_idempotency(owner, key, kind, request, job_id)
            if existing:
                return Submission(existing, JobStatus(self._status(existing)), created=False)
        status = JobStatus.scheduled if due else JobStatus.queued
        fields = self._fields(kind, request, params, account_sid, token, status, owner, request_id)
        if window:
            fields["window"] = window
        entry = (job_id, owner, status.value, self._digest(params))
        try:
            self._index_ready()
            pipe = self.redis.pipeline(transaction=True)
            self.store.write(pipe, job_id, fields)
            self.store.index(pipe, [entry], time.time())
            # Scheduled jobs wait in the schedule; the others get a watchdog entry there, so a
            # task message lost by the broker (a worker killed between taking it and recording
            # it as unacked) is handed out again. The ledger makes the spare delivery harmless.
            self.store.schedule(pipe, job_id, due or time.time() + self.settings.requeue_after)
            replicate = self.settings.store_min_replicas > 0
            queued = not due and not replicate and self.dispatcher.queue_in(pipe, [job_id])
            try:
                pipe.execute()
            except redis.exceptions.NoScriptError:  # the server lost its scripts: the rest ran
                self._index_loaded = False
                self._index_ready()
                pipe = self.redis.pipeline(transaction=False)
                self.store.index(pipe, [entry], time.time())
                pipe.execute()
            if replicate and not self._replicated():
                self._forget(job_id, owner, key, entry[3])
                raise ServiceUnavailable(REPLICAS_SHORT)
            if not due and not queued:
                self.dispatcher.send([job_id])
        except ServiceUnavailable:
            raise
        except (redis.RedisError, OSError) as exc:
            self._forget(job_id, owner, key, entry[3])
            raise ServiceUnavailable("The job store is unavailable; try again") from exc
        except Exception as exc:  # kombu raises OperationalError and friends
            self._forget(job_id, owner, key, entry[3])
            raise ServiceUnavailable("The queue is unavailable; try again") from exc
        return Submission(job_id, status, created=True)

    async def asubmit(
        self,
        kind: JobKind,
        payload: Mapping[str, Any] | _SendBase,
        *,
        idempotency_key: str | None = None,
        owner: str = "",
        request_id: str = "",
    ) -> Submission:
        """`submit` for an event loop. A plain send (no idempotency key, no sendAt, the broker
        on the job store's Redis) is written with the other sends in flight on this loop
        (twilio_jobs.writer); anything else runs `submit` in a thread."""
        request = self.validate(kind, payload)
        window, due = submission.windowed(kind, request, self.settings, None, time.time())
        if (
            idempotency_key
            or request.idempotencyKey
            or request.sendAt
            or due is not None
            or not self._async_ok
            or not self.dispatcher.shares_store
        ):
            return await asyncio.to_thread(
                self.submit,
                kind,
                request,
                idempotency_key=idempotency_key,
                owner=owner,
                request_id=request_id,
            )
        account_sid, token = self._credentials(request)
        params = twilio_params(request)
        job_id = new_job_id()
        fields = self._fields(
            kind, request, params, account_sid, token, JobStatus.queued, owner, request_id
        )
        if window:
            fields["window"] = window
        try:
            await self._writer().write(job_id, fields, self._digest(params))
        except (redis.RedisError, OSError) as exc:
            raise ServiceUnavailable("The job store is unavailable; try again") from exc
        return Submission(job_id, JobStatus.queued, created=True)

    def _replicated(self) -> bool:
        """TWILIO_JOBS_STORE_MIN_REPLICAS: a job is accepted only once that many replicas hold
        it, so that a failover cannot lose it; its task message goes out after that. Short of
        it, the job (which no worker can have yet) is removed and the caller gets a 503."""
        wanted = self.settings.store_min_replicas
        return connections.replicas_acked(self.redis, wanted) >= wanted

    def _digest(self, params: Mapping[str, Any]) -> str:
        """The recipient's keyed digest, for its index (twilio_jobs.search)."""
        to = params.get("To")
        return self.cipher.digest(to) if isinstance(to, str) and to else ""

    def _index_ready(self) -> None:
        if not self._index_loaded:
            self.store.load_index()
            self._index_loaded = True

    def _writer(self) -> JobWriter:
        """The coalescing writer of the running event loop (its connections belong to it)."""
        loop = asyncio.get_running_loop()
        writer = self._writers.get(loop)
        if writer is None:
            aredis = connections.async_redis_client(
                self.settings.store_url, decode_responses=True, health_check_interval=10
            )
            writer = self._writers[loop] = JobWriter(
                aredis,
                self.store,
                self.dispatcher,
                self.settings.requeue_after,
                min_replicas=self.settings.store_min_replicas,
            )
        return writer

    def _fields(
        self,
        kind: JobKind,
        request: _SendBase,
        params: Mapping[str, Any],
        account_sid: str,
        token: str,
        status: JobStatus,
        owner: str,
        request_id: str = "",
    ) -> dict[str, str]:
        return self.store.new_job_fields(
            kind,
            params,
            account_sid,
            self.cipher.encrypt_recent(token),
            status=status,
            owner=owner,
            own_cred=bool(request.accountToken),
            callback_url=str(request.callbackUrl)
            if request.callbackUrl
            else self.settings.default_callback_url,
            request_id=request_id,
        )

    def _credentials(self, request: _SendBase) -> tuple[str, str]:
        return submission.credentials(request, self.settings)

    def _claim_idempotency(
        self, owner: str, key: str, kind: JobKind, request: _SendBase, job_id: str
    ) -> str | None:
        shown = request.model_dump(mode="json", exclude={"accountToken", "idempotencyKey"})
        digest = hashlib.sha256(
            json.dumps([kind.value, shown], sort_keys=True).encode()
        ).hexdigest()
        redis_key = keys.idempotency(owner, key)
        try:
            if self.redis.set(redis_key, f"{job_id} {digest}", nx=True, ex=keys.IDEMPOTENCY_TTL):
                return None
            stored = self.redis.get(redis_key)
        except redis.RedisError as exc:
            raise ServiceUnavailable("The job store is unavailable; try again") from exc
        if stored is None:
            return None
        existing, stored_digest = str(stored).split(" ", 1)
        if stored_digest != digest:
            raise Conflict("Idempotency key was already used with a different request")
        return existing

    def _status(self, job_id: str) -> str:
        for _ in range(20):
            status = self.redis.hget(keys.job(job_id), "status")
            if status:
                return str(status)
            time.sleep(0.01)
        return JobStatus.queued.value

    def _forget(self, job_id: str, owner: str, key: str | None, digest: str) -> None:
        """The job was written but the caller is told it was not accepted: take it back."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            self.store.forget(pipe, job_id, digest)
            if key:
                pipe.delete(keys.idempotency(owner, key))
            pipe.execute()
        except redis.RedisError:
            pass

    # -- campaigns and suppressions (twilio_jobs.campaigns, twilio_jobs.campaign_state) ------

    @cached_property
    def campaigns(self) -> Campaigns:
        return Campaigns(self.settings, self.redis, self.store, self.cipher, self.dispatcher)

    @cached_property
    def campaign_state(self) -> CampaignState:
        return CampaignState(self.settings, self.redis, self.dispatcher)

    @cached_property
    def search(self) -> Search:
        return Search(self.redis, self.cipher)

    @cached_property
    def suppressions(self) -> Suppressions:
        return Suppressions(self.redis)

    @cached_property
    def accounts(self) -> AccountRegistry:
        return AccountRegistry(
            self.redis,
            api_base_url=self.settings.twilio_api_base_url,
            ttl=self.settings.result_ttl,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
        )

    def create_campaign(
        self, *, dry_run: bool = False, owner: str = "", **fields: Any
    ) -> CampaignAccepted:
        """`create_campaign(account_sid=..., from_=..., body="Hi {{name}}", recipients=[...])`;
        with `idempotency_key=...`, a repeat returns the first answer."""
        if dry_run:
            return self.campaigns.create(submission.camel(fields), owner=owner, dry_run=True)
        return self.campaigns.create_once(submission.camel(fields), owner=owner)[0]

    def campaign_report(self, campaign_id: str, *, owner: str | None = None) -> Iterator[str]:
        """The delivery report, CSV lines (`twilio_jobs.campaign_state.CampaignState.report`)."""
        self.campaign_state.status(campaign_id, owner=owner)  # CampaignNotFound before a line
        return self.campaign_state.report(campaign_id, owner=owner)

    def campaign_status(self, campaign_id: str, *, owner: str | None = None) -> CampaignStatus:
        return self.campaign_state.status(campaign_id, owner=owner)

    def campaign_jobs(
        self,
        campaign_id: str,
        *,
        status: JobStatus | None = None,
        cursor: int = 0,
        limit: int = 100,
        owner: str | None = None,
    ) -> CampaignJobs:
        return self.campaign_state.jobs(
            campaign_id, owner=owner, status=status, cursor=cursor, limit=limit
        )

    def pause_campaign(self, campaign_id: str, *, owner: str | None = None) -> CampaignStatus:
        return self.campaign_state.pause(campaign_id, owner=owner)

    def resume_campaign(self, campaign_id: str, *, owner: str | None = None) -> CampaignStatus:
        return self.campaign_state.resume(campaign_id, owner=owner)

    def cancel_campaign(self, campaign_id: str, *, owner: str | None = None) -> CampaignStatus:
        return self.campaign_state.cancel(campaign_id, owner=owner)

    # -- reading and managing ------------------------------------------------------------------

    def get(self, job_id: str, wait: float = 0.0, *, owner: str | None = None) -> JobRecord:
        """The job record (JobNotFound if there is none, or it is another tenant's); with
        `wait`, as `wait(job_id, wait)`."""
        if wait > 0:
            return self.wait(job_id, wait, owner=owner)
        try:
            fields = self.store.record(job_id, owner)
        except redis.RedisError as exc:
            raise ServiceUnavailable("The job store is unavailable; try again") from exc
        if fields is None:
            raise JobNotFound(job_id)
        return JobRecord.model_validate(fields)

    def wait(self, job_id: str, timeout: float = 30.0, *, owner: str | None = None) -> JobRecord:
        """The record once the job is final, or as it stands when `timeout` runs out."""
        deadline = time.monotonic() + timeout
        pause = 0.01
        while True:
            record = self.get(job_id, owner=owner)
            if record.status.final or time.monotonic() >= deadline:
                return record
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)

    def cancel(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        self.get(job_id, owner=owner)
        ended = lifecycle.ending(lifecycle.CANCELLED)
        outcome = self.store.cancel(job_id, ended["error"], ended["result"])
        if outcome == "missing":
            raise JobNotFound(job_id)
        if outcome != "cancelled":
            raise Conflict(f"Job cannot be cancelled: it is {outcome}")
        return self.get(job_id, owner=owner)

    def retry_failed(
        self,
        *,
        owner: str = "",
        account_token: str | None = None,
        campaign_id: str | None = None,
        error_code: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> BulkOutcome:
        """Retry every failed job the filter finds (never 21610, 21211 and the like:
        `twilio_jobs.bulk.NEVER_RETRY`), with one token for all of them."""
        flt = JobFilter(campaignId=campaign_id, errorCode=error_code, since=since, until=until)
        return bulk.retry_failed(self, owner, flt, account_token)

    def cancel_matching(
        self,
        *,
        owner: str = "",
        status: JobStatus | None = None,
        campaign_id: str | None = None,
        error_code: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> BulkOutcome:
        """Cancel every job the filter finds that has not been sent yet."""
        flt = JobFilter(campaignId=campaign_id, errorCode=error_code, since=since, until=until)
        return bulk.cancel_matching(self, owner, flt, status)

    def retry(
        self, job_id: str, account_token: str | None = None, *, owner: str | None = None
    ) -> JobRecord:
        fields = self.store.raw(job_id)
        if not fields or (owner is not None and fields.get("owner", "") != owner):
            raise JobNotFound(job_id)
        if fields.get("status") != "failed":
            raise Conflict(f"Only a failed job can be retried; this one is {fields.get('status')}")
        token = account_token
        if (
            not token
            and self.settings.twilio_auth_token
            and (fields.get("accountSid") == self.settings.twilio_account_sid)
        ):
            token = self.settings.twilio_auth_token.get_secret_value()
        if not token and not fields.get("cred"):
            raise InvalidRequest(CREDENTIALS_REQUIRED)
        outcome = self.store.reopen(
            job_id, self.cipher.encrypt(token) if token else "", own_cred=bool(account_token)
        )
        if outcome == "missing":
            raise JobNotFound(job_id)
        if outcome != "ok":
            raise Conflict(f"Only a failed job can be retried; this one is {outcome}")
        self.dispatcher.send([job_id])
        return self.get(job_id, owner=owner)

    def failed_webhooks(self, limit: int = 100, *, owner: str = "") -> list[FailedDelivery]:
        """Result-webhook deliveries that ran out of attempts, newest first."""
        return [FailedDelivery.model_validate(d) for d in self.webhooks.failed(owner, limit)]

    def replay_webhook(self, job_id: str, *, owner: str | None = None) -> JobRecord:
        """Send the job's exhausted webhook deliveries again, from their first attempt."""
        self.get(job_id, owner=owner)
        if not self.webhooks.replay(job_id):
            raise Conflict("This job has no exhausted webhook delivery to replay")
        return self.get(job_id, owner=owner)

    # -- suppressions (owner: the tenant, which must have proven it holds the account) ------

    def list_suppressions(
        self,
        account_sid: str,
        *,
        to: str | None = None,
        cursor: int = 0,
        limit: int = 100,
        sender: str | None = None,
        reason: str | None = None,
        owner: str = "",
    ) -> SuppressionPage:
        """The account's suppressions, a page at a time; `sender` filters by scope (a from
        number, a Messaging Service SID or `*`), `reason` by reason."""
        self.accounts.require(owner, account_sid)
        return self.suppressions.list(
            account_sid, to=to, cursor=cursor, limit=limit, sender=sender, reason=reason
        )

    def add_suppression(
        self,
        account_sid: str,
        to: str,
        sender: str = "*",
        reason: str = "manual",
        *,
        owner: str = "",
    ) -> Suppression:
        """Suppress `to` for one sender, a Messaging Service or (`*`) the whole account."""
        self.accounts.require(owner, account_sid)
        return self.suppressions.add(account_sid, to, sender, reason)

    def lift_suppression(
        self, account_sid: str, to: str, sender: str | None = None, *, owner: str = ""
    ) -> int:
        """Lift a suppression, for one sender or (without `sender`) for all; how many."""
        self.accounts.require(owner, account_sid)
        return self.suppressions.lift(account_sid, to, sender)

    def import_suppressions(self, account_sid: str, text: str, *, owner: str = "") -> int:
        """Add the rows of a CSV (`to`, and optionally `sender`, `reason`, `at`); how many."""
        self.accounts.require(owner, account_sid)
        return self.suppressions.import_csv(account_sid, text)

    def export_suppressions(self, account_sid: str, *, owner: str = "") -> Iterator[str]:
        """The account's suppressions as CSV (`to,sender,reason,at`), a chunk at a time."""
        self.accounts.require(owner, account_sid)
        return self.suppressions.export_csv(account_sid)

    def list_jobs(
        self,
        *,
        owner: str = "",
        status: JobStatus | str | None = None,
        to: str | None = None,
        campaign_id: str | None = None,
        error_code: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """The tenant's jobs, newest first, filtered (twilio_jobs.search); a page at a time."""
        query = JobQuery(
            JobStatus(status) if status else None, to, campaign_id, error_code, since, until
        )
        try:
            page = self.search.jobs(owner, query, cursor=cursor, limit=limit)
        except redis.RedisError as exc:
            raise ServiceUnavailable("The job store is unavailable; try again") from exc
        return JobPage.model_validate(page)

    def list_campaigns(
        self, *, owner: str = "", cursor: str | None = None, limit: int = 50
    ) -> CampaignPage:
        """The tenant's campaigns, newest first, each with its status."""
        ids, following = self.search.campaign_ids(owner, cursor=cursor, limit=limit)
        found = []
        for campaign_id in ids:
            try:
                found.append(self.campaign_state.status(campaign_id, owner=owner))
            except CampaignNotFound:  # expired meanwhile
                continue
        return CampaignPage(campaigns=found, nextCursor=following)

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except (redis.RedisError, OSError):
            return False

    def close(self) -> None:
        self.redis.close()
        self.dispatcher.close()


__all__ = ["Client", "Submission", "describe_errors", "new_job_id", "owner_of", "status_url"]
