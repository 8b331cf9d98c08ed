"""Global pacing in Redis, shared by every worker process on every machine: one module per
limit, each with its Lua part in `lua/`, all checked in one atomic acquire by the `Pacer`.

- `inflight`: requests in flight per account, with AIMD on 429/20429 (`lua/inflight.lua`);
- `rate`: messages per second per sender, GCRA (`lua/rate.lua`);
- `calls`: calls per second per account, the rate rule on one lane;
- `campaign_gate`: a paused or cancelled campaign starts nothing (`lua/campaign_gate.lua`).

Times are Redis's own clock (TIME), so workers on machines whose clocks differ, or a thread
that read its clock and then waited for the GIL, cannot squeeze two sends together; tests pass
an explicit `now`. A job that cannot start soon is not kept waiting in a worker: `backlog_due`
hands it a place in line on its lane, and it goes back through the scheduler until then.
"""

from twilio_jobs.pacing.inflight import account_cap, current_limit
from twilio_jobs.pacing.lane import Grant, Lane
from twilio_jobs.pacing.pacer import Pacer
from twilio_jobs.pacing.rate import sender_of, sender_rate

__all__ = ["Grant", "Lane", "Pacer", "account_cap", "current_limit", "sender_of", "sender_rate"]
