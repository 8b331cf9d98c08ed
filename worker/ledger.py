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
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis

from producer import counts, keys
from producer.tenancy import PROVE_LUA
from worker.gates import LUA as GATES

CLAIM = (
    GATES
    + """
local key = KEYS[1]
local f = redis.call('HMGET', key, 'status', 'ledger', 'leaseUntil', 'nextAt', 'submittedAt')
local status, ledger, lease_until, next_at, submitted = f[1], f[2], f[3], f[4], f[5]
if not status then return {'missing'} end
if status == 'succeeded' or status == 'failed' or status == 'cancelled'
   or status == 'suppressed' or ledger == 'sent' then
  return {'final', status}
end
local now = tonumber(ARGV[1])
if ledger == 'submitting' and lease_until and now < tonumber(lease_until) then
  return {'busy', lease_until}
end
if next_at and tonumber(next_at) > now + 1 then return {'early', next_at} end
local mode = 'send'
if ledger == 'submitting' or ledger == 'unknown' then mode = 'reconcile' end
if mode == 'send' then
  local gate = tj_gate(key, ARGV[5], status, ARGV[4])
  if gate then return {gate} end
end
local attempts
if mode == 'send' then
  attempts = redis.call('HINCRBY', key, 'attempts', 1)
  submitted = ARGV[1]
else
  attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
  submitted = submitted or ARGV[1]
end
local lease_end = now + tonumber(ARGV[2])
redis.call('HSET', key, 'status', 'running', 'ledger', 'submitting', 'lease', ARGV[3],
           'leaseUntil', tostring(lease_end), 'submittedAt', submitted,
           'updatedAt', ARGV[4])
redis.call('HDEL', key, 'nextAt')
tj_moved(key, status, 'running')
-- Watchdog: if this worker dies, the scheduler hands the job out again when the lease ends.
redis.call('ZADD', KEYS[2], lease_end, ARGV[5])
local d = redis.call('HMGET', key, 'kind', 'params', 'accountSid', 'cred', 'callbackUrl',
                     'campaignId', 'error')
return {mode, tostring(attempts), submitted, d[1] or '', d[2] or '{}', d[3] or '', d[4] or '',
        d[5] or '', d[6] or '', d[7] or ''}
"""
)

# A success proves the job's account to its tenant (producer.tenancy).
# KEYS: job, schedule, sid owner key. ARGV: lease, fields (json object), deletions (json list),
# due ('' for none), job id, sid ('' for none), ttl.
SETTLE = (
    counts.LUA
    + PROVE_LUA
    + """
local key = KEYS[1]
if redis.call('HGET', key, 'lease') ~= ARGV[1] then return 0 end
local old = redis.call('HGET', key, 'status')
local fields = cjson.decode(ARGV[2])
for k, v in pairs(fields) do redis.call('HSET', key, k, v) end
for _, k in ipairs(cjson.decode(ARGV[3])) do redis.call('HDEL', key, k) end
if fields.status then tj_moved(key, old, fields.status) end
if fields.status == 'succeeded' then tj_prove(key, ARGV[7]) end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
else
  redis.call('ZREM', KEYS[2], ARGV[5])
end
if ARGV[6] ~= '' then redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[7]) end
return 1
"""
)

# A Twilio SID may be adopted by one job only.
TAKE_SID = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


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


def sid_key(sid: str) -> str:
    return f"{keys.PREFIX}sid:{sid}"


class Ledger:
    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self._claim = redis.register_script(CLAIM)
        self._settle = redis.register_script(SETTLE)
        self._take_sid = redis.register_script(TAKE_SID)

    def claim(self, job_id: str, now: float, lease_seconds: float, stamp: str) -> Claim:
        lease = secrets.token_hex(8)
        raw = self._claim(
            keys=[keys.job(job_id), keys.SCHEDULE],
            args=[repr(now), repr(lease_seconds), lease, stamp, job_id],
        )
        return self._parse(raw, lease)

    def claim_many(
        self, job_ids: Sequence[str], now: float, lease_seconds: float, stamp: str
    ) -> list[Claim]:
        """`claim` for many jobs in one round trip (the campaign fast path)."""
        leases = [secrets.token_hex(8) for _ in job_ids]
        pipe = self.redis.pipeline(transaction=False)
        for job_id, lease in zip(job_ids, leases, strict=True):
            self._claim(
                keys=[keys.job(job_id), keys.SCHEDULE],
                args=[repr(now), repr(lease_seconds), lease, stamp, job_id],
                client=pipe,
            )
        return [self._parse(raw, lease) for raw, lease in zip(pipe.execute(), leases, strict=True)]

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
        encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        return bool(
            self._settle(
                keys=[keys.job(job_id), keys.SCHEDULE, sid_key(sid or "-")],
                args=[
                    lease,
                    json.dumps(encoded),
                    json.dumps(list(delete)),
                    repr(due) if due is not None else "",
                    job_id,
                    sid or "",
                    self.ttl,
                ],
            )
        )

    def take_sid(self, job_id: str, sid: str) -> bool:
        return bool(self._take_sid(keys=[sid_key(sid)], args=[job_id, self.ttl]))

    def sid_taken_by_other(self, job_id: str, sid: str) -> bool:
        owner = self.redis.get(sid_key(sid))
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
