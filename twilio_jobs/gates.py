"""The checks a job passes before it may be sent: its campaign is not paused or cancelled, and
its recipient has not opted out (Twilio error 21610) for this account and sender.

`lua/gates.lua` defines `tj_gate(job_key, job_id, status, stamp)`, run inside the ledger's
claim (so the state in Redis is read when each job starts, by every worker) and again by
`lua/unclaim.lua` when a claimed job is handed back (pacing said wait, or the campaign was
paused meanwhile). It returns nil when the job may go on, else what became of it:
    paused      the job id is parked in the campaign's set; `resume` dispatches it again
    cancelled   the job ended `cancelled`
    suppressed  the job ended `suppressed` without calling Twilio
"""

from __future__ import annotations

import json

from redis import Redis

from twilio_jobs import keys, scripts
from twilio_jobs.lifecycle import CANCELLED, SUPPRESSED, SUPPRESSED_CODE
from twilio_jobs.store import now_iso


class Gates:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._unclaim = scripts.register(redis, "unclaim")

    def unclaim(self, job_id: str, lease: str, due: float, status: str = "queued") -> str:
        """Give a claimed, unsent job back: parked, ended by its gate, or back in the schedule
        at `due`, waiting as `status` (queued: pacing; scheduled: outside its send window)."""
        return str(
            self._unclaim(
                keys=[keys.job(job_id), keys.SCHEDULE],
                args=[lease, now_iso(), job_id, repr(due), status],
            )
        )

    def suppress(self, account: str, sender: str, to: str, job_id: str, at: float) -> None:
        entry = json.dumps(
            {"reason": "21610", "code": SUPPRESSED_CODE, "at": now_iso(at), "jobId": job_id}
        )
        self.redis.hset(keys.suppressed(account), f"{sender} {to}", entry)


__all__ = ["CANCELLED", "SUPPRESSED", "SUPPRESSED_CODE", "Gates"]
