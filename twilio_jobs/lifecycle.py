"""How a job moves through its states: the one home of `JobStatus`, the final set and the
transition table.

    scheduled ──> queued ──> running ──> succeeded
        │  ▲        ▲  │      │  ▲  ├──> failed ──> queued (POST /api/jobs/{id}/retry)
        │  │        │  │      │  │  └──> retrying ──> running
        │  │        └──┼──────┘  │          (handed back by pacing: running -> queued)
        │  └───────────┼─────────┘ (handed back outside its send window: running -> scheduled)
        └──────────────┴─────────┴──> cancelled | suppressed (before anything was sent)

Every status change is made in Redis by the Lua function `tj_move` (`lua/lifecycle.lua`),
called by every script that changes a status. It refuses any move this table does not allow,
before the script writes anything, and keeps the campaign counters. The table and the final
set reach Lua from here (`lua_constants`), never retyped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from twilio_jobs.envelopes import error_envelope


class JobStatus(StrEnum):
    #: Waiting in the schedule for its `sendAt` or its send window (`sendWindow`).
    scheduled = "scheduled"
    #: Its task message is with the broker (or it was handed back to wait for pacing).
    queued = "queued"
    #: A worker holds its send-ledger lease and may be calling Twilio now.
    running = "running"
    #: The last attempt failed in a way worth trying again; waits in the schedule until then.
    retrying = "retrying"
    #: Twilio created the message or call; the record holds the resource.
    succeeded = "succeeded"
    #: Ended with an error (permanent, or out of attempts); `POST /retry` may run it again.
    failed = "failed"
    #: Cancelled before it was handed to Twilio.
    cancelled = "cancelled"
    #: Not sent: the recipient opted out of this sender (Twilio error 21610).
    suppressed = "suppressed"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.suppressed}
)
"""States a job stays in unless someone acts on it (`retry` on a failed job)."""

INITIAL_STATES = frozenset({JobStatus.scheduled, JobStatus.queued})
"""The states a job record is created in."""

_S = JobStatus
TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    # The scheduler releases a due job; a worker may claim it before the release is recorded.
    _S.scheduled: frozenset({_S.queued, _S.running, _S.cancelled, _S.suppressed}),
    _S.queued: frozenset({_S.running, _S.cancelled, _S.suppressed}),
    # queued: handed back unsent (pacing); scheduled: handed back unsent outside its send
    # window (twilio_jobs.windows); cancelled/suppressed: its gate, when handed back.
    _S.running: frozenset(
        {
            _S.succeeded,
            _S.failed,
            _S.retrying,
            _S.queued,
            _S.scheduled,
            _S.cancelled,
            _S.suppressed,
        }
    ),
    _S.retrying: frozenset({_S.running, _S.cancelled, _S.suppressed}),
    _S.failed: frozenset({_S.queued}),
    _S.succeeded: frozenset(),
    _S.cancelled: frozenset(),
    _S.suppressed: frozenset(),
}
"""Every move a job may make. Staying in the same state is not a move and always allowed."""


class IllegalTransition(ValueError):
    def __init__(self, old: str | None, new: str) -> None:
        super().__init__(f"A job cannot move from {old or 'nothing'} to {new}")


def allowed(old: str | None, new: str) -> bool:
    """Whether a job in `old` (None: a record being created) may move to `new`."""
    try:
        target = JobStatus(new)
    except ValueError:
        return False
    if old is None:
        return target in INITIAL_STATES
    try:
        source = JobStatus(old)
    except ValueError:
        return False
    return source == target or target in TRANSITIONS[source]


def check(old: str | None, new: str) -> JobStatus:
    """`new` as a status, if the move is allowed; else IllegalTransition."""
    if not allowed(old, new):
        raise IllegalTransition(old, new)
    return JobStatus(new)


def is_final(status: str | None) -> bool:
    return status is not None and JobStatus(status) in FINAL_STATES


CANCELLED = "Job was cancelled"
SUPPRESSED = (
    "Not sent: the recipient opted out of messages from this sender (Twilio error 21610); "
    "DELETE /api/suppressions lifts it"
)
SUPPRESSED_CODE = 21610


def ending(message: str, *, status: int | None = None, code: int | None = None) -> dict[str, str]:
    """The `error` and `result` fields (JSON) of a record that ends without a Twilio resource:
    the one builder for cancelled, suppressed and failed records."""
    error = {"status": status, "code": code, "message": message, "retryable": False}
    return {"error": json.dumps(error), "result": json.dumps(error_envelope(message))}


def lua_string(text: str) -> str:
    """A Lua string literal (JSON's escapes of ASCII text are Lua's too)."""
    if not text.isascii():
        raise ValueError(f"not ASCII: {text!r}")
    return json.dumps(text)


def _lua_set(items: Any) -> str:
    return "{" + ", ".join(f"[{lua_string(str(i))}] = true" for i in sorted(items)) + "}"


def lua_constants() -> str:
    """The statuses, final set and transition table as Lua locals, for `lua/lifecycle.lua`."""
    moves = ", ".join(
        f"[{lua_string(source.value)}] = {_lua_set(t.value for t in targets)}"
        for source, targets in TRANSITIONS.items()
    )
    return (
        f"local TJ_FINAL = {_lua_set(s.value for s in FINAL_STATES)}\n"
        f"local TJ_INITIAL = {_lua_set(s.value for s in INITIAL_STATES)}\n"
        f"local TJ_MOVES = {{{moves}}}\n"
    )


__all__ = [
    "CANCELLED",
    "FINAL_STATES",
    "INITIAL_STATES",
    "TRANSITIONS",
    "IllegalTransition",
    "JobStatus",
    "SUPPRESSED",
    "SUPPRESSED_CODE",
    "allowed",
    "check",
    "ending",
    "is_final",
    "lua_constants",
]
