"""What a worker does with one job id: plain functions over their collaborators, no Celery."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twilio_jobs import keys, logs, tracing
from twilio_jobs.crypto import Cipher
from twilio_jobs.errors import CREDENTIALS_REQUIRED
from twilio_jobs.gates import SUPPRESSED_CODE, Gates
from twilio_jobs.ledger import Claim, Ledger, Settle
from twilio_jobs.pacing.pacer import Grant, Lane, Pacer
from twilio_jobs.pacing.rate import sender_of
from twilio_jobs.pacing.wait import FIRST_STEP, WaitPolicy
from twilio_jobs.schemas import JobKind, JobStatus, error_envelope, success_envelope
from twilio_jobs.settings import Settings
from twilio_jobs.status_callbacks import with_status_callback
from twilio_jobs.store import now_iso
from twilio_jobs.twilio.api import TwilioApi
from twilio_jobs.windows import Window, next_open
from worker import metrics
from worker.errors import AmbiguousError, PermanentError, RetryableError, SendError

log = logging.getLogger("twilio_jobs.worker")

Notify = Callable[[str, str], None]


@dataclass
class Runtime:
    settings: Settings
    ledger: Ledger
    gateway: TwilioApi
    cipher: Cipher
    notify: Notify = lambda job_id, event: None
    clock: Callable[[], float] = time.time
    jitter: Callable[[], float] = field(default=random.random)
    pacer: Pacer | None = None
    gates: Gates | None = None
    sleep: Callable[[float], None] = time.sleep

    @property
    def lease_seconds(self) -> float:
        return float(self.settings.connect_timeout + self.settings.read_timeout + 5.0)

    def wait_policy(self, *, holds_thread: bool) -> WaitPolicy:
        return WaitPolicy(self.settings.pace_max_wait, self.lease_seconds, holds_thread)


def backoff(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random."""
    ceiling: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + ceiling / 2 * jitter


def run_job(job_id: str, rt: Runtime) -> str:
    """Move one job as far as it can go now. Returns what happened, for logs and tests."""
    now = rt.clock()
    claim = rt.ledger.claim(job_id, now, rt.lease_seconds, now_iso(now))
    return run_claimed(job_id, claim, rt)


def run_claimed(job_id: str, claim: Claim, rt: Runtime) -> str:
    with tracing.span(
        "twilio_jobs.send",
        parent=claim.trace,
        kind="consumer",
        attributes=span_attrs(job_id, claim),
    ):
        return _run_claimed(job_id, claim, rt)


def span_attrs(job_id: str, claim: Claim) -> dict[str, Any]:
    return {
        "twilio_jobs.job_id": job_id,
        "twilio_jobs.kind": claim.kind,
        "twilio_jobs.attempt": claim.attempts,
        "twilio_jobs.campaign_id": claim.campaign_id,
    }


def _run_claimed(job_id: str, claim: Claim, rt: Runtime) -> str:
    if claim.mode in ("missing", "final", "paused"):
        return claim.mode
    if claim.mode in ("cancelled", "suppressed"):
        rt.notify(job_id, f"job.{claim.mode}")
        ended(job_id, claim, rt, claim.mode)
        return claim.mode
    if claim.mode in ("busy", "early"):
        rt.ledger.redis.zadd(keys.SCHEDULE, {job_id: claim.until}, nx=True)
        return claim.mode
    kind = JobKind(claim.kind)
    try:
        token = rt.cipher.decrypt(claim.cred) if claim.cred else ""
    except ValueError as exc:
        return _fail(job_id, claim, rt, PermanentError(str(exc)))
    if not token:
        return _fail(job_id, claim, rt, PermanentError(CREDENTIALS_REQUIRED))
    params = with_status_callback(claim.params or {}, job_id, rt.settings, rt.cipher, kind)
    if claim.mode == "reconcile":
        done, claim = reconcile_claimed(job_id, claim, token, rt)
        if done is not None:
            return done
    deferred = defer_if_closed(job_id, claim, rt)
    if deferred:
        return deferred
    lane = grant = None
    if rt.pacer is not None:
        lane = Lane.of(kind, claim.account_sid, params, claim.campaign_id, rt.settings)
        waited = time.monotonic()
        grant = wait_turn(rt.pacer, lane, rt)
        metrics.PACING_WAIT.labels("single").observe(time.monotonic() - waited)
        if not grant.leases:
            return hand_back(job_id, claim, rt, lane, grant)
        # Paced past the window's end: wait for the next window rather than send late.
        opens = window_closed(claim, rt.clock())
        if opens is not None:
            rt.pacer.release(lane, grant.leases)
            return defer(job_id, claim, rt, opens)
    return _send_now(job_id, claim, rt, kind, token, params, lane, grant)


def reconcile_claimed(
    job_id: str, claim: Claim, token: str, rt: Runtime
) -> tuple[str | None, Claim]:
    """A `reconcile` claim: what an earlier create made is adopted (or the job fails, out of
    attempts): (what happened, claim); or nothing was made: (None, the claim of a new attempt),
    to be sent."""
    adopted = _reconcile(job_id, claim, JobKind(claim.kind), token, rt)
    if adopted is not None:
        return adopted, claim
    if claim.attempts >= rt.settings.max_attempts:
        return _fail(job_id, claim, rt, _last_error(claim)), claim
    attempts = rt.ledger.bump_attempts(job_id)
    return None, Claim(**{**claim.__dict__, "attempts": attempts, "submitted_at": rt.clock()})


def _send_now(
    job_id: str,
    claim: Claim,
    rt: Runtime,
    kind: JobKind,
    token: str,
    params: Mapping[str, Any],
    lane: Lane | None = None,
    grant: Grant | None = None,
) -> str:
    queued_for(claim, rt.clock())
    result: dict[str, Any] | SendError
    try:
        result = rt.gateway.create(kind, claim.account_sid, token, params)
    except SendError as exc:
        result = exc
    finally:
        if rt.pacer is not None and lane is not None and grant is not None:
            rt.pacer.release(lane, grant.leases)
    return finish(job_id, claim, rt, result)


def finish(job_id: str, claim: Claim, rt: Runtime, outcome: dict[str, Any] | SendError) -> str:
    """Record what a create gave: the resource, or the classified error."""
    metrics.record_send(claim.kind, outcome)
    if not isinstance(outcome, SendError):
        return _succeed(job_id, claim, rt, outcome)
    exc = outcome
    if isinstance(exc, PermanentError):
        params = claim.params or {}
        if exc.code == SUPPRESSED_CODE and rt.gates is not None and params.get("To"):
            sender = sender_of(params)
            rt.gates.suppress(claim.account_sid, sender, str(params["To"]), job_id, rt.clock())
        return _fail(job_id, claim, rt, exc)
    if isinstance(exc, RetryableError):
        if exc.status == 429 or exc.code == 20429:
            return _throttled(job_id, claim, rt, exc)
        if claim.attempts >= rt.settings.max_attempts:
            return _fail(job_id, claim, rt, exc)
        return _retry_later(job_id, claim, rt, exc)
    return _unknown(job_id, claim, rt, exc)


def wait_turn(pacer: Pacer, lane: Lane, rt: Runtime) -> Grant:
    """Wait for a slot on the lane as the one wait policy says (`twilio_jobs.pacing.wait`);
    a grant without leases means: hand the job back."""
    policy = rt.wait_policy(holds_thread=True)
    started, step = rt.clock(), FIRST_STEP
    while True:
        grant = pacer.acquire(lane)
        if grant.leases:
            if grant.starts[0] > 0:
                rt.sleep(grant.starts[0])
            return grant
        wait = policy.next_wait(grant, rt.clock() - started, step)
        if wait is None:
            return grant
        rt.sleep(wait * (1.0 + 0.2 * rt.jitter()))
        step = policy.next_step(step)


def ended(
    job_id: str, claim: Claim, rt: Runtime, outcome: str, *, sid: str = "", code: int | None = None
) -> None:
    """The one log line of a job that ended: who, what, how long; never a token or a body, and
    the number masked unless TWILIO_JOBS_LOG_PII."""
    now = rt.clock()
    params = claim.params or {}
    accepted = _unix(claim.created_at)
    log.info(
        "job %s %s",
        job_id,
        outcome,
        extra=logs.fields(
            jobId=job_id,
            campaignId=claim.campaign_id,
            accountSid=claim.account_sid,
            kind=claim.kind,
            outcome=outcome,
            attempts=claim.attempts,
            twilioSid=sid,
            errorCode=code,
            to=logs.phone(str(params.get("To") or ""), rt.settings.log_pii),
            queueSeconds=round(now - accepted, 3) if accepted else None,
            sendSeconds=round(now - claim.submitted_at, 3) if claim.submitted_at else None,
        ),
    )


def _unix(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None
    except ValueError:
        return None


def queued_for(claim: Claim, now: float) -> None:
    """Observe acceptance-to-send for a first attempt (a retry's wait is its backoff's)."""
    accepted = _unix(claim.created_at)
    if claim.attempts != 1 or accepted is None:
        return
    metrics.QUEUE_TO_SEND.labels(claim.kind).observe(max(0.0, now - accepted))


def window_closed(claim: Claim, now: float) -> float | None:
    """When the job's send window next opens, if it is closed at `now` (unix); None when it
    is open or the job has none. A window that never opens again answers a day from now (the
    zones were checked when the job was accepted; a newer tz database may disagree)."""
    window = Window.loads(claim.window)
    if window is None:
        return None
    at = next_open(window, datetime.fromtimestamp(now, UTC))
    if at is None:
        return now + 24 * 3600.0
    opens = at.timestamp()  # `now` itself when open (to the microsecond)
    return opens if opens > now + 0.001 else None


def defer_if_closed(job_id: str, claim: Claim, rt: Runtime) -> str | None:
    """Put a claimed, unsent job outside its send window back in the schedule, `scheduled`
    until the window opens; what became of it, or None when it may be sent now."""
    opens = window_closed(claim, rt.clock())
    return None if opens is None else defer(job_id, claim, rt, opens)


def defer(job_id: str, claim: Claim, rt: Runtime, opens: float) -> str:
    """`defer_if_closed` for a window known to be closed until `opens`."""
    gates = rt.gates or Gates(rt.ledger.redis)
    outcome = gates.unclaim(job_id, claim.lease, opens, status=JobStatus.scheduled.value)
    if outcome in ("cancelled", "suppressed"):
        rt.notify(job_id, f"job.{outcome}")
        ended(job_id, claim, rt, outcome)
        return outcome
    return "deferred" if outcome == JobStatus.scheduled.value else outcome


def hand_back(job_id: str, claim: Claim, rt: Runtime, lane: Lane, grant: Grant) -> str:
    """Nothing was sent and the turn is far off: free the worker, come back through the
    scheduler at the job's place in line (or park it, if its campaign was paused)."""
    assert rt.pacer is not None and rt.gates is not None
    if grant.reason == "rate":
        due = rt.pacer.backlog_due(lane)
    else:
        due = rt.clock() + max(grant.wait, 0.2 + 0.3 * rt.jitter())
    outcome = rt.gates.unclaim(job_id, claim.lease, due)
    if outcome in ("cancelled", "suppressed"):
        rt.notify(job_id, f"job.{outcome}")
        ended(job_id, claim, rt, outcome)
    return "paced" if outcome == "queued" else outcome


def _reconcile(job_id: str, claim: Claim, kind: JobKind, token: str, rt: Runtime) -> str | None:
    """Look for what an earlier, unanswered create made. None: nothing was made, send now."""
    try:
        found = rt.gateway.find(
            kind,
            claim.account_sid,
            token,
            claim.params or {},
            claim.submitted_at,
            taken=lambda sid: rt.ledger.sid_taken_by_other(job_id, sid),
        )
    except SendError as exc:
        if rt.clock() - claim.submitted_at > rt.settings.reconcile_window:
            return _fail(
                job_id,
                claim,
                rt,
                AmbiguousError(
                    "Outcome unknown: Twilio could not be asked whether the earlier attempt "
                    f"was created ({exc.message}); not sent again to avoid a duplicate",
                    status=exc.status,
                    code=exc.code,
                ),
                unsure=True,
            )
        metrics.RECONCILIATIONS.labels("unknown").inc()
        return _unknown(job_id, claim, rt, exc)
    if found is None:
        metrics.RECONCILIATIONS.labels("none").inc()
        return None
    if not rt.ledger.take_sid(job_id, str(found["sid"])):
        metrics.RECONCILIATIONS.labels("none").inc()
        return None
    metrics.RECONCILIATIONS.labels("adopted").inc()
    log.info("job %s: adopted %s found by reconciliation", job_id, found["sid"])
    return _succeed(job_id, claim, rt, found)


def _last_error(claim: Claim) -> SendError:
    last = claim.last_error or {}
    return SendError(
        str(last.get("message") or "Gave up: no attempt was confirmed by Twilio"),
        status=last.get("status"),
        code=last.get("code"),
    )


def _succeed(job_id: str, claim: Claim, rt: Runtime, resource: dict[str, Any]) -> str:
    return succeed_many([(job_id, claim, resource)], rt)[0]


def succeed_many(done: Sequence[tuple[str, Claim, dict[str, Any]]], rt: Runtime) -> list[str]:
    """Record the resources creates made, for many jobs in one round trip (the fast path
    coalesces the successes of a loop pass)."""
    stamp = now_iso(rt.clock())
    outcomes = [
        Settle(
            job_id,
            claim.lease,
            {
                "status": JobStatus.succeeded.value,
                "ledger": "sent",
                "twilioSid": str(resource.get("sid", "")),
                "result": success_envelope(resource),
                "updatedAt": stamp,
            },
            delete=("cred", "error", "lease", "leaseUntil"),
            sid=str(resource.get("sid", "")) or None,
        )
        for job_id, claim, resource in done
    ]
    results = []
    settled = rt.ledger.settle_many(outcomes)
    for (job_id, claim, _), outcome, ok in zip(done, outcomes, settled, strict=True):
        if ok:
            rt.notify(job_id, "job.succeeded")
            ended(job_id, claim, rt, "succeeded", sid=outcome.sid or "")
        results.append("succeeded" if ok else "lost-lease")
    return results


def _fail(job_id: str, claim: Claim, rt: Runtime, exc: SendError, *, unsure: bool = False) -> str:
    """Fail the job. `unsure`: an earlier create may exist, so a manual retry must reconcile."""
    error = exc.as_record()
    error["retryable"] = False
    fields: dict[str, Any] = {
        "status": JobStatus.failed.value,
        "error": error,
        "result": error_envelope(exc.message),
        "updatedAt": now_iso(rt.clock()),
    }
    if unsure:
        fields["ledger"] = "unknown"
    settled = rt.ledger.settle(
        job_id,
        claim.lease,
        fields,
        delete=("cred", "lease", "leaseUntil")
        if unsure
        else ("cred", "ledger", "lease", "leaseUntil"),
    )
    if settled:
        rt.notify(job_id, "job.failed")
        ended(job_id, claim, rt, "failed", code=exc.code)
    return "failed" if settled else "lost-lease"


def _retry_later(job_id: str, claim: Claim, rt: Runtime, exc: SendError) -> str:
    delay = backoff(claim.attempts, rt.settings.backoff_base, rt.settings.backoff_max, rt.jitter())
    if exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    due = rt.clock() + delay
    settled = rt.ledger.settle(
        job_id,
        claim.lease,
        {
            "status": JobStatus.retrying.value,
            "error": exc.as_record(),
            "nextAt": repr(due),
            "updatedAt": now_iso(rt.clock()),
        },
        delete=("ledger", "lease", "leaseUntil"),
        due=due,
    )
    return "retrying" if settled else "lost-lease"


def _throttled(job_id: str, claim: Claim, rt: Runtime, exc: SendError) -> str:
    """A 429 says the account is busy, not that this send failed: the account's in-flight
    limit is cut (AIMD, `Retry-After` honoured), the attempt is given back, and the job waits.
    It gives up only once it has been throttled for `throttled_give_up` seconds."""
    if rt.pacer is not None:
        rt.pacer.throttled(claim.account_sid, None, exc.retry_after)
    now = rt.clock()
    since, count = rt.ledger.note_throttle(job_id, now)
    if now - since >= rt.settings.throttled_give_up:
        gave_up = SendError(
            f"{exc.message} (Twilio kept answering 429 for {now - since:.0f} s; gave up)",
            status=exc.status,
            code=exc.code,
        )
        return _fail(job_id, claim, rt, gave_up)
    delay = backoff(count, rt.settings.backoff_base, rt.settings.retry_after_max, rt.jitter())
    if exc.retry_after is not None:
        delay = max(delay, min(exc.retry_after, rt.settings.retry_after_max))
    due = now + delay
    settled = rt.ledger.settle(
        job_id,
        claim.lease,
        {
            "status": JobStatus.retrying.value,
            "attempts": str(max(0, claim.attempts - 1)),
            "error": exc.as_record(),
            "nextAt": repr(due),
            "updatedAt": now_iso(now),
        },
        delete=("ledger", "lease", "leaseUntil"),
        due=due,
    )
    return "throttled" if settled else "lost-lease"


def _unknown(job_id: str, claim: Claim, rt: Runtime, exc: SendError) -> str:
    """The create may have happened: park the job for reconciliation, never a blind re-send."""
    due = rt.clock() + rt.settings.reconcile_delay
    settled = rt.ledger.settle(
        job_id,
        claim.lease,
        {
            "status": JobStatus.retrying.value,
            "ledger": "unknown",
            "error": exc.as_record(),
            "nextAt": repr(due),
            "updatedAt": now_iso(rt.clock()),
        },
        delete=("lease", "leaseUntil"),
        due=due,
    )
    return "unknown" if settled else "lost-lease"
