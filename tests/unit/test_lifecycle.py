"""The job lifecycle: the transition table, and `tj_move`, the one Lua function through which
every status change goes, which refuses every move the table does not allow."""

from __future__ import annotations

import itertools
import json
import re

import fakeredis
import pytest
from redis.exceptions import ResponseError

from twilio_jobs import keys, lifecycle, scripts
from twilio_jobs.lifecycle import FINAL_STATES, TRANSITIONS, IllegalTransition, JobStatus

STATUSES = [s.value for s in JobStatus]
PAIRS = list(itertools.product([None, *STATUSES], STATUSES))

MOVE = scripts.compose(
    "tj_move(KEYS[1], redis.call('HGET', KEYS[1], 'status'), ARGV[1])\nreturn 1", ["lifecycle"]
)


def test_every_status_has_a_row_and_finals_lead_nowhere_but_retry() -> None:
    assert set(TRANSITIONS) == set(JobStatus)
    for status in FINAL_STATES:
        allowed = TRANSITIONS[status]
        assert allowed <= {JobStatus.queued}, status
    assert TRANSITIONS[JobStatus.failed] == {JobStatus.queued}


def test_the_documented_lifecycle_is_allowed() -> None:
    path = ["scheduled", "queued", "running", "retrying", "running", "failed", "queued",
            "running", "succeeded"]  # fmt: skip
    for old, new in itertools.pairwise(path):
        assert lifecycle.allowed(old, new), (old, new)


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_check_agrees_with_the_table(old: str | None, new: str) -> None:
    expected = (
        new in ("scheduled", "queued")
        if old is None
        else old == new or JobStatus(new) in TRANSITIONS[JobStatus(old)]
    )
    assert lifecycle.allowed(old, new) is expected
    if expected:
        assert lifecycle.check(old, new) == JobStatus(new)
    else:
        with pytest.raises(IllegalTransition):
            lifecycle.check(old, new)


def test_unknown_statuses_are_refused() -> None:
    assert not lifecycle.allowed("queued", "paused")
    assert not lifecycle.allowed("sent", "queued")


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.mark.parametrize(("old", "new"), [(o, n) for o, n in PAIRS if o is not None])
def test_tj_move_applies_exactly_the_allowed_moves(
    redis: fakeredis.FakeRedis, old: str, new: str
) -> None:
    job = keys.job("j1")
    counts = keys.campaign_counts("CP1")
    redis.hset(job, mapping={"status": old, "campaignId": "CP1"})
    redis.hset(counts, mapping={old: 1, "final": int(JobStatus(old).final)})
    move = redis.register_script(MOVE)
    if lifecycle.allowed(old, new):
        move(keys=[job], args=[new])
        assert redis.hget(job, "status") == new
        if old != new:
            assert int(redis.hget(counts, old) or 0) == 0
            assert int(redis.hget(counts, new) or 0) == 1
        assert int(redis.hget(counts, "final") or 0) == int(JobStatus(new).final)
    else:
        before = (redis.hgetall(job), redis.hgetall(counts))
        with pytest.raises(ResponseError, match="cannot move"):
            move(keys=[job], args=[new])
        assert (redis.hgetall(job), redis.hgetall(counts)) == before


def test_the_final_set_and_table_reach_lua_from_python() -> None:
    text = scripts.constants()
    final = re.search(r"local TJ_FINAL = \{(.*)\}\n", text)
    assert final is not None
    assert set(re.findall(r'\["(\w+)"\]', final.group(1))) == {s.value for s in FINAL_STATES}
    for name in scripts.names():
        body = (scripts.LUA_DIR / f"{name}.lua").read_text()
        for status in ("'succeeded'", "'cancelled' or", "== 'failed' or"):
            assert f"status == {status}" not in body, name  # no retyped final set


def test_only_tj_move_writes_a_job_status() -> None:
    """Scripts over job hashes write `status` only through tj_move; the webhook scripts write
    a delivery's own status, which is not a job's."""
    for name in scripts.names():
        body = (scripts.LUA_DIR / f"{name}.lua").read_text()
        writes = re.findall(r"HSET', [^,]+, 'status'", body)
        if name == "lifecycle":
            assert writes == ["HSET', job_key, 'status'"]
        elif name.startswith("webhook_"):
            assert "job" not in " ".join(writes)
        else:
            assert not writes, name


def test_every_script_opens_with_its_keys_and_argv() -> None:
    for name in scripts.names():
        body = (scripts.LUA_DIR / f"{name}.lua").read_text()
        header = list(itertools.takewhile(lambda line: line.startswith("--"), body.splitlines()))
        assert header and header[0].startswith(f"-- {name}:"), name
        shown = "\n".join(header)
        code = body[len(shown) :]
        for ref in set(re.findall(r"(KEYS|ARGV)\[(\d+)\]", code)):
            index = int(ref[1])
            assert re.search(rf"{ref[0]}\[{index}(\]|\.\.)", shown) or re.search(
                rf"{ref[0]}\[\d+\.\.\]", shown
            ), (name, ref)


def test_every_script_compiles(redis_conn: object) -> None:
    for name in scripts.names():
        redis_conn.script_load(scripts.source(name))  # type: ignore[attr-defined]


def test_endings_are_built_once() -> None:
    ended = lifecycle.ending(lifecycle.CANCELLED)
    assert json.loads(ended["error"]) == {
        "status": None, "code": None, "message": "Job was cancelled", "retryable": False
    }  # fmt: skip
    assert json.loads(ended["result"]) == {
        "callback": "error", "contextWrites": {"to": "Job was cancelled"}
    }  # fmt: skip
    assert lifecycle.lua_string(ended["error"]) in scripts.constants()


def test_a_job_taken_back_leaves_no_count_and_no_index_entry(redis: fakeredis.FakeRedis) -> None:
    """`JobStore.forget` (the API wrote a job, then answered 503): the record, its schedule
    entry, its index entries and its count in the stats hash go; a job that moved on stays."""
    from twilio_jobs.schemas import JobKind
    from twilio_jobs.store import JobStore

    store = JobStore(redis, ttl=3600)
    store.load_index()
    fields = store.new_job_fields(
        JobKind.sendSms, {"To": "+14155550100"}, "AC1", "ct", status=JobStatus.queued, owner="t1"
    )
    for job_id in ("j1", "j2"):
        pipe = redis.pipeline(transaction=True)
        store.write(pipe, job_id, fields)
        store.index(pipe, [(job_id, "t1", "queued", "d1")], 1000.0)
        store.schedule(pipe, job_id, 2000.0)
        pipe.execute()
    redis.hset(keys.job("j2"), "lease", "L")  # a worker took it
    assert redis.hget(keys.STATS, "status:queued") == "2"

    pipe = redis.pipeline(transaction=False)
    for job_id in ("j1", "j2", "j3"):
        store.forget(pipe, job_id, "d1")
    assert pipe.execute() == [1, 0, 0]
    assert not redis.exists(keys.job("j1"))
    assert redis.hget(keys.STATS, "status:queued") == "1"
    for index in (
        keys.index_all("t1"),
        keys.index_status("t1", "queued"),
        keys.index_to("t1", "d1"),
    ):
        assert redis.zrange(index, 0, -1) == ["j2"]
    assert redis.zrange(keys.SCHEDULE, 0, -1) == ["j2"]
