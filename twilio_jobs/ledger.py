"""The send ledger: who may call Twilio for a job, and what happened when they did.

Ledger states in the job hash (`ledger` field):
    (absent)    nothing was created at Twilio for this job (yet)
    submitting  a worker holds the lease (`lease`, `leaseUntil`) and may be calling Twilio now
    unknown     a create's outcome is unknown: the next holder must reconcile before sending
    sent        Twilio created it; `twilioSid` is set, and nobody sends again

`claim` is atomic: of any number of deliveries of a job's task, one gets the lease. A lease
that ran out (its worker died mid-call) turns into a reconciliation, never a blind re-send.
Every write after the claim carries the lease token and is dropped if the lease was lost.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

from twilio_jobs import keys, scripts
from twilio_jobs.connections import REPLICA_WAIT, ClaimReplicas

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    mode: str  # send | reconcile | busy | early | final | missing | paused | cancelled | suppressed
    lease: str = ""
    attempts: int = 0
    submitted_at: float = 0.0
    kind: str = ""
    params: Mapping[str, Any] | None = None
    account_sid: str = ""
    cred: str = ""
    callback_url: str = ""
    campaign_id: str = ""
    last_error: Mapping[str, Any] | None = None
    until: float = 0.0
    created_at: str = ""  # ISO 8601, when the job was accepted
    trace: str = ""  # the accepting request's traceparent (twilio_jobs.tracing)
    window: str = ""  # the job's send window with its zones (twilio_jobs.windows.Window)


@dataclass(frozen=True)
class Settle:
    """One outcome for `Ledger.settle_many`, as `Ledger.settle` takes it."""

    job_id: str
    lease: str
    fields: Mapping[str, Any]
    delete: Sequence[str] = ()
    sid: str | None = None


class Ledger:
    def __init__(
        self, redis: Redis, ttl: int, holder: str = "", replicas: ClaimReplicas | None = None
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        # Replicas that must hold a claim before it is sent (connections.ClaimReplicas).
        self.replicas = replicas
        # The worker id whose heartbeat vouches for this process's leases (twilio_jobs.heartbeat).
        self.holder = holder
        self._claims = keys.worker_claims(holder or "-")
        self._claim = scripts.register(redis, "claim")
        self._settle = scripts.register(redis, "settle")
        self._take_sid = scripts.register(redis, "take_sid")

    def claim(self, job_id: str, now: float, lease_seconds: float, stamp: str) -> Claim:
        return self.claim_many([job_id], now, lease_seconds, stamp)[0]

    def claim_many(
        self, job_ids: Sequence[str], now: float, lease_seconds: float, stamp: str
    ) -> list[Claim]:
        """`claim` for many jobs in one round trip (the campaign fast path)."""
        leases = [secrets.token_hex(8) for _ in job_ids]
        wanted = self.replicas.wanted() if self.replicas is not None else 0
        calls = [
            (
                [keys.job(job_id), keys.SCHEDULE, self._claims],
                [repr(now), repr(lease_seconds), lease, stamp, job_id, self.holder],
            )
            for job_id, lease in zip(job_ids, leases, strict=True)
        ]
        if len(job_ids) == 1 and not wanted:
            script_keys, args = calls[0]
            return [self._parse(self._claim(keys=script_keys, args=args), leases[0])]
        if not wanted:
            replies = scripts.pipelined(self.redis, "claim", calls)
            return [self._parse(raw, lease) for raw, lease in zip(replies, leases, strict=True)]
        pipe = self.redis.pipeline(transaction=False)
        for script_keys, args in calls:
            self._claim(keys=script_keys, args=args, client=pipe)
        # The same connection's writes: WAIT counts them (connections._wait_args).
        pipe.execute_command(*ClaimReplicas.wait_args(wanted))  # type: ignore[no-untyped-call]
        pipe.info("replication")  # which master answered: the one the claims were made on
        replies = pipe.execute()
        claims = [
            self._parse(raw, lease)
            for raw, lease in zip(replies[: len(job_ids)], leases, strict=True)
        ]
        short = int(replies[len(job_ids)]) < wanted
        if short and self.replicas is not None and self.replicas.still_wanted(replies[-1], wanted):
            until = now + lease_seconds
            return [
                self._unconfirmed(job_id, c, until)
                for job_id, c in zip(job_ids, claims, strict=True)
            ]
        return claims

    @staticmethod
    def _unconfirmed(job_id: str, claim: Claim, until: float) -> Claim:
        """A claim no replica confirmed may vanish in a failover, and the job with it be sent
        again by whoever the new master hands it to: not sent now. Its lease runs out, and the
        next claim reconciles with Twilio before sending (or, if the claim was lost, starts
        afresh on the new master)."""
        if claim.mode not in ("send", "reconcile"):
            return claim
        log.warning(
            "job %s: no replica confirmed the claim within %.1f s; not sent until its lease ends",
            job_id,
            REPLICA_WAIT,
        )
        return Claim("busy", until=until)

    @staticmethod
    def _parse(raw: Any, lease: str) -> Claim:
        reply = [x.decode() if isinstance(x, bytes) else str(x) for x in raw]
        mode = reply[0]
        if mode in ("busy", "early"):
            return Claim(mode, until=float(reply[1]))
        if mode not in ("send", "reconcile"):
            return Claim(mode)
        return Claim(
            mode,
            lease=lease,
            attempts=int(reply[1]),
            submitted_at=float(reply[2]),
            kind=reply[3],
            params=json.loads(reply[4]),
            account_sid=reply[5],
            cred=reply[6],
            callback_url=reply[7],
            campaign_id=reply[8],
            last_error=json.loads(reply[9]) if reply[9] else None,
            created_at=reply[10] if len(reply) > 10 else "",
            trace=reply[11] if len(reply) > 11 else "",
            window=reply[12] if len(reply) > 12 else "",
        )

    def settle(
        self,
        job_id: str,
        lease: str,
        fields: Mapping[str, Any],
        *,
        delete: Iterable[str] = (),
        due: float | None = None,
        sid: str | None = None,
    ) -> bool:
        """Write an outcome if this worker still holds the lease."""
        return bool(
            self._settle(
                keys=[keys.job(job_id), keys.SCHEDULE, keys.sid(sid or "-")],
                args=self._settle_args(job_id, lease, fields, delete, due, sid),
            )
        )

    def _settle_args(
        self,
        job_id: str,
        lease: str,
        fields: Mapping[str, Any],
        delete: Iterable[str],
        due: float | None,
        sid: str | None,
    ) -> list[Any]:
        encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return [
            lease,
            json.dumps(encoded),
            json.dumps(list(delete)),
            repr(due) if due is not None else "",
            job_id,
            sid or "",
            self.ttl,
        ]

    def settle_many(self, outcomes: Sequence[Settle]) -> list[bool]:
        """`settle` for many jobs in one round trip (the fast path's successes)."""
        calls = [
            (
                [keys.job(o.job_id), keys.SCHEDULE, keys.sid(o.sid or "-")],
                self._settle_args(o.job_id, o.lease, o.fields, o.delete, None, o.sid),
            )
            for o in outcomes
        ]
        return [bool(reply) for reply in scripts.pipelined(self.redis, "settle", calls)]

    def take_sid(self, job_id: str, sid: str) -> bool:
        return bool(self._take_sid(keys=[keys.sid(sid)], args=[job_id, self.ttl]))

    def sid_taken_by_other(self, job_id: str, sid: str) -> bool:
        owner = self.redis.get(keys.sid(sid))
        return owner is not None and str(owner) != job_id

    def note_throttle(self, job_id: str, now: float) -> tuple[float, int]:
        """Count a 429 for the job: (when its first 429 came, how many it has had)."""
        key = keys.job(job_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(key, "throttledSince", repr(now))
        pipe.hincrby(key, "throttles", 1)
        pipe.hget(key, "throttledSince")
        _, count, since = pipe.execute()
        return float(since), int(count)

    def bump_attempts(self, job_id: str) -> int:
        return int(self.redis.hincrby(keys.job(job_id), "attempts", 1))
