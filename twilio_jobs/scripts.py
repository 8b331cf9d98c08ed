"""The Lua scripts (`lua/*.lua`), read once and registered on a Redis client by name.

Each file opens with what it does, its KEYS and ARGV. A line `-- include: a b` puts the
functions of `lua/a.lua` and `lua/b.lua` (and what they include) before the script; a script
that includes `lifecycle` or `outbox` also gets the constants generated from Python: the
statuses, the final set and the transition table (`twilio_jobs.lifecycle`), the key builders
(`twilio_jobs.keys`), the endings of cancelled and suppressed jobs and the record's fields; its
body runs as a function, after which the webhook events it queued are written
(`lua/outbox.lua`). Redis runs all of it on every call, so the pacing scripts, which need none
of it, go without.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from redis.exceptions import NoScriptError

from twilio_jobs import keys, lifecycle
from twilio_jobs.schemas import RECORD_FIELDS

LUA_DIR = Path(__file__).with_name("lua")
INCLUDE = "-- include:"


def _ending_table(name: str, message: str, code: int | None) -> str:
    fields = lifecycle.ending(message, code=code)
    error, result = (lifecycle.lua_string(fields[k]) for k in ("error", "result"))
    return f"local {name} = {{error = {error}, result = {result}}}\n"


@cache
def constants() -> str:
    return (
        "-- generated from twilio_jobs.lifecycle, twilio_jobs.keys and twilio_jobs.scripts\n"
        + lifecycle.lua_constants()
        + keys.lua_constants()
        + _ending_table("TJ_CANCELLED", lifecycle.CANCELLED, None)
        + _ending_table("TJ_SUPPRESSED", lifecycle.SUPPRESSED, lifecycle.SUPPRESSED_CODE)
        + "local TJ_RECORD_FIELDS = {"
        + ", ".join(lifecycle.lua_string(name) for name in RECORD_FIELDS)
        + "}\n"
    )


@cache
def _text(name: str) -> str:
    return (LUA_DIR / f"{name}.lua").read_text()


def _includes(name: str) -> list[str]:
    found: list[str] = []
    for line in _text(name).splitlines():
        if line.startswith(INCLUDE):
            found += line[len(INCLUDE) :].split()
    return found


def _closure(name: str, seen: list[str]) -> None:
    for dep in _includes(name):
        if dep not in seen:
            _closure(dep, seen)
            seen.append(dep)


def compose(body: str, includes: list[str]) -> str:
    """`body` after the constants and the named files (and what they include). With the
    outbox, the body runs as a function and the webhook events it queued are written after it
    returns, in the same script."""
    deps: list[str] = []
    for name in includes:
        if name not in deps:
            _closure(name, deps)
            deps.append(name)
    texts = [_text(dep) for dep in deps]
    if "outbox" in deps:  # the generated constants serve outbox.lua and what includes it
        texts.insert(0, constants())
        body = f"local function tj_script()\n{body}\nend\nlocal tj_reply = tj_script()\n"
        body += "tj_flush()\nreturn tj_reply"
    return "\n".join([*texts, body])


@cache
def source(name: str) -> str:
    """The full text of a script as Redis runs it."""
    return compose(_text(name), _includes(name))


@cache
def sha(name: str) -> str:
    """The SHA1 Redis knows the script by (EVALSHA), as SCRIPT LOAD would answer."""
    return hashlib.sha1(source(name).encode()).hexdigest()  # noqa: S324 - Redis's own naming


def register(redis: Any, name: str) -> Any:
    """`redis.register_script` of the named script (sync or asyncio client alike)."""
    return redis.register_script(source(name))


def pipelined(
    redis: Any, name: str, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]
) -> list[Any]:
    """Many calls (keys, args) of one script in one round trip, by SHA. redis-py's pipelined
    scripts ask SCRIPT EXISTS first, a second round trip every time; here a Redis that lost its
    script cache (a restart, a failover) answers NOSCRIPT to the calls it did not run, which are
    run again after a SCRIPT LOAD. Raises the first error of any call."""

    def run(batch: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        pipe = redis.pipeline(transaction=False)
        for script_keys, args in batch:
            pipe.execute_command("EVALSHA", sha(name), len(script_keys), *script_keys, *args)
        return list(pipe.execute(raise_on_error=False))

    replies = run(calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        redis.script_load(source(name))
        for i, reply in zip(missing, run([calls[i] for i in missing]), strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def names() -> list[str]:
    return sorted(path.stem for path in LUA_DIR.glob("*.lua"))


__all__ = ["compose", "names", "pipelined", "register", "sha", "source"]
