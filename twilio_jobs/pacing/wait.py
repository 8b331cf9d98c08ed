"""The one wait policy: after an acquire that granted nothing, how long a send waits before it
asks again, or whether it goes back to the scheduler (`hand_back`) instead. The single-send
threads (`worker.handlers.wait_turn`) and the campaign event loop (`worker.fastpath.LanePump`)
both ask it.

- `paused`/`cancelled`: at once back (the scheduler parks or ends the job).
- `rate` and `hold` (a `Retry-After` on the account): Redis says how long; a wait that would
  end past `pace_max_wait` goes back to the scheduler at its place in line.
- `inflight` (the account is full): slots free as requests end, which only this process
  announces (to its own pump), so the sender asks again every few milliseconds. It waits as
  long as waiting is cheap. The campaign path has one asker per lane for all its coroutines:
  every 5 ms, up to a third of the ledger lease (well inside it). A thread asks for itself
  alone: 5 ms doubling to 100 ms, up to `pace_max_wait`, since a thread held by a full account
  is a send that another account cannot make.
"""

from __future__ import annotations

from dataclasses import dataclass

from twilio_jobs.pacing.lane import Grant

FIRST_STEP = 0.005
MAX_STEP = 0.1


@dataclass(frozen=True)
class WaitPolicy:
    pace_max_wait: float
    lease_seconds: float
    holds_thread: bool

    @property
    def inflight_patience(self) -> float:
        return self.pace_max_wait if self.holds_thread else self.lease_seconds / 3

    def next_wait(self, grant: Grant, waited: float, step: float) -> float | None:
        """Seconds to wait before asking again, or None to hand the job back.
        `waited`: seconds this send has waited so far; `step`: the current in-flight step."""
        if grant.reason in ("paused", "cancelled"):
            return None
        if grant.reason == "inflight":
            wait, patience = step, self.inflight_patience
        else:
            wait, patience = grant.wait, self.pace_max_wait
        if waited + wait > patience:
            return None
        return wait

    def next_step(self, step: float) -> float:
        return min(step * 2, MAX_STEP) if self.holds_thread else FIRST_STEP


__all__ = ["FIRST_STEP", "MAX_STEP", "WaitPolicy"]
