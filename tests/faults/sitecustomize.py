"""A fault injected into a real worker process, for tests (tests/integration/test_webhooks.py).

A directory on PYTHONPATH with this file in it makes every Python process started there import
it. With TWILIO_JOBS_TEST_FAULT=kill-after-final it wraps the send ledger's `settle` and
`settle_many` (the event loop's successes) so that the first process to write a job's final
state (succeeded or failed) kills itself with SIGKILL
right after that write returns: before anything that followed the write in the worker (where
the result webhook used to be queued) runs. TWILIO_JOBS_TEST_FAULT_MARK names a file made at
that moment, so that only one process dies (the supervisor's restart runs clean).
"""

from __future__ import annotations

import os
import signal
from typing import Any

if os.environ.get("TWILIO_JOBS_TEST_FAULT") == "kill-after-final":
    from twilio_jobs.ledger import Ledger

    _settle, _settle_many = Ledger.settle, Ledger.settle_many

    def _die_once() -> None:
        try:
            fd = os.open(os.environ["TWILIO_JOBS_TEST_FAULT_MARK"], os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    def _settle_then_die(self: Ledger, job_id: str, lease: str, fields: Any, **kw: Any) -> bool:
        settled = _settle(self, job_id, lease, fields, **kw)
        if settled and fields.get("status") in ("succeeded", "failed"):
            _die_once()
        return settled

    def _settle_many_then_die(self: Ledger, outcomes: Any) -> list[bool]:
        settled = _settle_many(self, outcomes)
        final = ("succeeded", "failed")
        if any(ok and o.fields.get("status") in final for o, ok in zip(outcomes, settled, strict=True)):
            _die_once()
        return settled

    Ledger.settle = _settle_then_die  # type: ignore[method-assign]
    Ledger.settle_many = _settle_many_then_die  # type: ignore[method-assign]
