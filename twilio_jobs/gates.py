"""The checks a job passes before it may be sent: its campaign is not paused or cancelled, and
its recipient has not opted out (Twilio error 21610) for this account and sender.

`LUA` defines `tj_gate(job_key, job_id, status, stamp)`, run inside the ledger's claim (so the
state in Redis is read when each job starts, by every worker) and again by `UNCLAIM` when a
claimed job is handed back (pacing said wait, or the campaign was paused meanwhile). It returns
nil when the job may go on, else what became of it:
    paused      the job id is parked in the campaign's set; `resume` dispatches it again
    cancelled   the job ended `cancelled`
    suppressed  the job ended `suppressed` without calling Twilio
"""

from __future__ import annotations

import json

from redis import Redis

from twilio_jobs import counts, keys
from twilio_jobs.schemas import error_envelope
from twilio_jobs.store import now_iso

CANCELLED = "Job was cancelled"
SUPPRESSED = (
    "Not sent: the recipient opted out of messages from this sender (Twilio error 21610); "
    "DELETE /api/suppressions lifts it"
)
SUPPRESSED_CODE = 21610


def _ending(message: str, code: int | None) -> tuple[str, str]:
    error = {"status": None, "code": code, "message": message, "retryable": False}
    return json.dumps(error), json.dumps(error_envelope(message))


_CANCEL_ERR, _CANCEL_ENV = _ending(CANCELLED, None)
_SUPP_ERR, _SUPP_ENV = _ending(SUPPRESSED, SUPPRESSED_CODE)

LUA = (
    counts.LUA
    + f"""
local function tj_end(key, old, new, stamp, err, result)
  redis.call('HSET', key, 'status', new, 'updatedAt', stamp, 'error', err, 'result', result)
  redis.call('HDEL', key, 'cred', 'ledger', 'lease', 'leaseUntil', 'nextAt')
  tj_moved(key, old, new)
end
local function tj_gate(key, job_id, old, stamp)
  local f = redis.call('HMGET', key, 'campaignId', 'kind', 'params', 'accountSid')
  if f[1] and f[1] ~= '' then
    local campaign = '{keys.CAMPAIGN_PREFIX}' .. f[1]
    local state = redis.call('HGET', campaign, 'state')
    if state == 'paused' then
      redis.call('SADD', campaign .. ':parked', job_id)
      return 'paused'
    elseif state == 'cancelled' then
      tj_end(key, old, 'cancelled', stamp, [[{_CANCEL_ERR}]], [[{_CANCEL_ENV}]])
      return 'cancelled'
    end
  end
  if f[2] ~= 'makeCall' and f[3] and f[4] then
    local ok, p = pcall(cjson.decode, f[3])
    if ok and type(p) == 'table' and type(p.To) == 'string' then
      local sender = p.From
      if type(sender) ~= 'string' then sender = p.MessagingServiceSid end
      if type(sender) == 'string'
         and redis.call('HEXISTS', '{keys.PREFIX}suppressed:' .. f[4], sender .. ' ' .. p.To) == 1
      then
        tj_end(key, old, 'suppressed', stamp, [[{_SUPP_ERR}]], [[{_SUPP_ENV}]])
        return 'suppressed'
      end
    end
  end
  return nil
end
"""
)

# Hand a claimed job back before anything was sent. KEYS: job, schedule. ARGV: lease, stamp,
# job id, due. Returns 0 if the lease was lost, else the gate's outcome or 'queued'.
UNCLAIM = (
    LUA
    + """
local key = KEYS[1]
if redis.call('HGET', key, 'lease') ~= ARGV[1] then return 0 end
redis.call('HINCRBY', key, 'attempts', -1)
redis.call('HDEL', key, 'ledger', 'lease', 'leaseUntil')
local gate = tj_gate(key, ARGV[3], 'running', ARGV[2])
if gate == 'cancelled' or gate == 'suppressed' then return gate end
redis.call('HSET', key, 'status', 'queued', 'updatedAt', ARGV[2])
tj_moved(key, 'running', 'queued')
if gate == 'paused' then return gate end
redis.call('HSET', key, 'nextAt', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 'queued'
"""
)


class Gates:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._unclaim = redis.register_script(UNCLAIM)

    def unclaim(self, job_id: str, lease: str, due: float) -> str:
        """Give a claimed, unsent job back: parked, ended by its gate, or re-queued at `due`."""
        return str(
            self._unclaim(
                keys=[keys.job(job_id), keys.SCHEDULE], args=[lease, now_iso(), job_id, repr(due)]
            )
        )

    def suppress(self, account: str, sender: str, to: str, job_id: str, at: float) -> None:
        entry = json.dumps({"code": SUPPRESSED_CODE, "at": now_iso(at), "jobId": job_id})
        self.redis.hset(keys.suppressed(account), f"{sender} {to}", entry)
