"""Every Redis key the service uses, in one place."""

from __future__ import annotations

PREFIX = "tj:"


def job(job_id: str) -> str:
    """Hash: the job record, its Twilio parameters, encrypted credentials and send ledger."""
    return f"{PREFIX}job:{job_id}"


def idempotency(owner: str, key: str) -> str:
    """String: `<job id> <payload digest>` for 24 hours."""
    return f"{PREFIX}idem:{owner}:{key}"


def sid(twilio_sid: str) -> str:
    """String: the job id that adopted this Twilio SID (one job per SID)."""
    return f"{PREFIX}sid:{twilio_sid}"


SCHEDULE = f"{PREFIX}schedule"
"""Sorted set of job ids by the unix time they are due: sendAt, retry backoff, reconciliation."""

SCHEDULER_LOCK = f"{PREFIX}scheduler:lock"

REPLICATION_PROBE = f"{PREFIX}replication"
"""Pub/sub channel, never subscribed: a PUBLISH there orders a WAIT after earlier writes
(twilio_jobs.connections.replicas_acked)."""


def webhook(delivery_id: str) -> str:
    """Hash: one result-webhook delivery (event, url, body snapshot, attempts, state)."""
    return f"{PREFIX}webhook:{delivery_id}"


WEBHOOK_SCHEDULE = f"{PREFIX}webhooks:schedule"
"""Sorted set of webhook delivery ids by the unix time they are due: new ones (a safety net for
a lost task), ones being sent (until their lease runs out) and ones backing off."""

WEBHOOK_SCHEDULER_LOCK = f"{PREFIX}webhooks:scheduler:lock"

# -- worker heartbeats and orphan recovery (twilio_jobs.heartbeat)

WORKERS = f"{PREFIX}workers"
"""Sorted set: worker id -> Redis server time of its last heartbeat. Ids are worker processes
and, on a Redis broker, each broker channel that consumes (`<process id>/<n>`)."""


def worker_claims(worker_id: str) -> str:
    """Set: job ids whose send-ledger lease the worker process took (stale entries are
    harmless: a reaper checks the job's `leaseHolder`)."""
    return f"{PREFIX}worker:{worker_id}:claims"


def worker_tags(worker_id: str) -> str:
    """Set, in the broker's Redis: delivery tags of the task messages a broker channel took and
    has not acked (their payloads are in kombu's `unacked` hash)."""
    return f"{PREFIX}worker:{worker_id}:tags"


WEBHOOKS_FAILED = f"{PREFIX}webhooks:failed"
"""Sorted set of exhausted webhook delivery ids by the unix time they gave up."""

WEBHOOK_MIN_TTL = 2 * 24 * 3600
"""A delivery is kept as long as its job's record, and at least this long (its retries span
about a day)."""

IDEMPOTENCY_TTL = 24 * 3600


# -- campaigns


def campaign(campaign_id: str) -> str:
    """Hash: a campaign's settings and `state` (active | paused | cancelled)."""
    return f"{PREFIX}campaign:{campaign_id}"


def campaign_counts(campaign_id: str) -> str:
    """Hash: jobs per status, `delivery:<status>`, `error:<code>`, `final`, the send-rate ring."""
    return f"{PREFIX}campaign:{campaign_id}:counts"


def campaign_vars(campaign_id: str) -> str:
    """Hash: job id -> its recipient's template variables (a JSON list, in the order of the
    campaign's `vars`), for the delivery report."""
    return f"{PREFIX}campaign:{campaign_id}:vars"


def campaign_jobs(campaign_id: str) -> str:
    """List: the campaign's job ids in recipient order."""
    return f"{PREFIX}campaign:{campaign_id}:jobs"


def campaign_parked(campaign_id: str) -> str:
    """Set: job ids that met the campaign paused; dispatched again on resume."""
    return f"{PREFIX}campaign:{campaign_id}:parked"


CAMPAIGN_PREFIX = f"{PREFIX}campaign:"


# -- global pacing (twilio_jobs.pacing)


def in_flight(account_sid: str) -> str:
    """Sorted set: lease id -> expiry of each request in flight for the account."""
    return f"{PREFIX}pace:inflight:{account_sid}"


def in_flight_asks(account_sid: str) -> str:
    """Sorted set: worker process -> when it last got fewer in-flight slots of the account
    than it asked for (its fair share, lua/inflight.lua)."""
    return f"{PREFIX}pace:asks:{account_sid}"


def aimd(account_sid: str) -> str:
    """Hash: the account's in-flight limit after a 429 (`limit`, `at`, `cut`, `hold`)."""
    return f"{PREFIX}pace:aimd:{account_sid}"


def rate(account_sid: str, lane: str) -> str:
    """String: theoretical arrival time (GCRA) of the next send on a lane: a sender, or `calls`."""
    return f"{PREFIX}pace:rate:{account_sid}:{lane}"


def backlog(account_sid: str, lane: str) -> str:
    """String: the latest time handed to a job re-queued to wait for this lane."""
    return f"{PREFIX}pace:backlog:{account_sid}:{lane}"


# -- suppressions


def suppressed(account_sid: str) -> str:
    """Hash: `<scope> <to>` -> JSON {reason, at, code?, jobId?} for recipients not to send to;
    the scope a from number, a Messaging Service SID or `*` (the account)."""
    return f"{PREFIX}suppressed:{account_sid}"


# -- inbound messages


def inbound_seen(account_sid: str, message_sid: str) -> str:
    """String: set once an inbound message was handled (Twilio may post it again)."""
    return f"{PREFIX}inbound:seen:{account_sid}:{message_sid}"


def inbound_token(account_sid: str) -> str:
    """String: the account's auth token, encrypted (`POST /api/accounts/inbound`), for checking
    the signatures of its inbound messages."""
    return f"{PREFIX}inbound:token:{account_sid}"


def inbound_counts(account_sid: str) -> str:
    """Hash: inbound messages of the account by keyword (`stop`, `start`, `help`, `other`)."""
    return f"{PREFIX}inbound:counts:{account_sid}"


# -- tenancy


PROVEN_PREFIX = f"{PREFIX}proven:"


def proven(tenant: str) -> str:
    """Sorted set: account SID -> unix time the tenant last proved it holds the account."""
    return f"{PROVEN_PREFIX}{tenant}"


# -- operations (metrics)

STATS = f"{PREFIX}stats"
"""Hash kept by the lifecycle (`tj_move`) and the job writers: `status:<s>` jobs in each state
now, `ended:<s>` moves into each final state ever; `worker_restarts` by the supervisor."""

CAMPAIGNS_RUNNING = f"{PREFIX}campaigns:running"
"""Set: campaigns with jobs not yet final (added when written, removed by the last to end)."""

AIMD_ACCOUNTS = f"{PREFIX}aimd:accounts"
"""Set: accounts whose in-flight limit a 429 has cut (their AIMD state is worth showing)."""


# -- indexes (twilio_jobs.search): sorted sets of job ids by creation time (unix seconds), per
# tenant. Each is trimmed to TWILIO_JOBS_RESULT_TTL by score and expires with its newest record.

OPEN_TENANT = "_"
"""The tenant part of index keys without API keys (a tenant name starts with a letter or digit,
a bare key's tenant is a hex digest: neither is `_`)."""


def _tenant(owner: str) -> str:
    return owner or OPEN_TENANT


def index_all(owner: str) -> str:
    """Sorted set: every job of the tenant."""
    return f"{PREFIX}ix:{_tenant(owner)}:all"


def index_status(owner: str, status: str) -> str:
    """Sorted set: the tenant's jobs in one status (kept by `tj_move`)."""
    return f"{PREFIX}ix:{_tenant(owner)}:status:{status}"


def index_to(owner: str, digest: str) -> str:
    """Sorted set: the tenant's jobs to the recipients of one bucket, named by a keyed digest
    of the number (`Cipher.digest`, 4,096 buckets), never the number itself."""
    return f"{PREFIX}ix:{_tenant(owner)}:to:{digest}"


def index_campaign(owner: str, campaign_id: str) -> str:
    """Sorted set: the jobs of one of the tenant's campaigns."""
    return f"{PREFIX}ix:{_tenant(owner)}:campaign:{campaign_id}"


def index_error(owner: str, code: str) -> str:
    """Sorted set: the tenant's jobs that failed with, or were reported undelivered with, a
    Twilio error code."""
    return f"{PREFIX}ix:{_tenant(owner)}:error:{code}"


def index_campaigns(owner: str) -> str:
    """Sorted set: the tenant's campaign ids by creation time."""
    return f"{PREFIX}ix:{_tenant(owner)}:campaigns"


NO_CAMPAIGN = campaign("-")
"""A key never written: the campaign hash of a job that has none, for scripts that take one."""


def lua_constants() -> str:
    """Lua functions building the keys that scripts derive from a job's fields (a job's
    campaign, its suppression list, its webhook deliveries), from the functions above: no
    prefix is retyped in Lua."""
    marker = "\x00"

    lines = []
    for name, key in (
        ("job", job(marker)),
        ("webhook", webhook(marker)),
        ("campaign", campaign(marker)),
        ("campaign_counts", campaign_counts(marker)),
        ("campaign_parked", campaign_parked(marker)),
        ("suppressed", suppressed(marker)),
        ("proven", proven(marker)),
        ("in_flight", in_flight(marker)),
    ):
        head, _, tail = key.partition(marker)
        assert "'" not in head + tail and "\\" not in head + tail
        suffix = f" .. '{tail}'" if tail else ""
        lines.append(f"local function tj_key_{name}(id) return '{head}' .. id{suffix} end")
        if name == "job":
            start = len(head) + 1
            lines.append(f"local function tj_job_id(key) return string.sub(key, {start}) end")
    lines.append(f"local function tj_key_webhook_schedule() return '{WEBHOOK_SCHEDULE}' end")
    lines.append(f"local TJ_WEBHOOK_MIN_TTL_MS = {WEBHOOK_MIN_TTL * 1000}")
    lines.append(f"local TJ_KEY_STATS = '{STATS}'")
    lines.append(f"local TJ_KEY_CAMPAIGNS_RUNNING = '{CAMPAIGNS_RUNNING}'")
    # Index keys of a tenant (`OPEN_TENANT` for ""), from the builders above.
    for name, key in (
        ("index_status", index_status(marker, "\x01")),
        ("index_campaign", index_campaign(marker, "\x01")),
        ("index_error", index_error(marker, "\x01")),
        ("index_to", index_to(marker, "\x01")),
    ):
        head, _, rest = key.partition(marker)
        middle, _, tail = rest.partition("\x01")
        assert not tail and "'" not in head + middle
        lines.append(
            f"local function tj_key_{name}(owner, x) return '{head}' .. tj_tenant(owner) .. "
            f"'{middle}' .. x end"
        )
    lines.insert(
        0,
        "local function tj_tenant(owner) if not owner or owner == '' then return "
        f"'{OPEN_TENANT}' end return owner end",
    )
    head, _, tail = index_all(marker).partition(marker)
    lines.append(
        f"local function tj_key_index_all(owner) return '{head}' .. tj_tenant(owner) .. "
        f"'{tail}' end"
    )
    return "\n".join(lines) + "\n"
