"""Every multi-key Lua script of `twilio_jobs/lua/` against a real Redis Cluster on loopback:
which run as they are, which fail, and which keys they touch.

    python bench/cluster_scripts.py

Starts, in a temporary directory, a standalone `redis-server` and a Redis Cluster of three
masters (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), on free loopback
ports; stops them and removes the directory at the end. Nothing else is touched.

Jobs and a campaign are created by the real client library (`Client.submit`,
`Client.create_campaign`) on the standalone Redis and copied (DUMP/RESTORE) into the cluster
under each key scheme's names. Then each script is called as its caller in `twilio_jobs/` calls
it (the same KEYS, realistic ARGV), in the order of a job's life, twice:

1. on the standalone Redis under MONITOR: every key the script touched, the ones it declared in
   KEYS and the ones it built inside Lua, and how many hash slots they fall in;
2. on the cluster, sent to the master owning KEYS[1]'s slot (any master when it declares
   none): OK, or the server's error (CROSSSLOT for declared keys in several slots; "non local
   key" / "keys that do not hash to the same slot" for keys built inside Lua).

Both runs are done for two key schemes: `today` (twilio_jobs.keys as it is) and `one tag`,
every key builder of twilio_jobs.keys patched to put one hash tag after the prefix
(`tj:{b0}:job:<id>`, `tj:{b0}:schedule`, ...; kombu's keys `{b0}unacked` ...). The second shows
that nothing but the slots stands in the way; a real scheme has one tag per shard bucket and
the scripts must take it from KEYS[1] rather than from generated constants (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from redis.crc import key_slot  # noqa: E402

from bench.harness import free_port, print_table  # noqa: E402

SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuv"
ACCOUNT = "AC5f37acb24007a320eefb5ffaeb498a78"
TOKEN = "fake-auth-token-5b1c0e0c9d2a4f7e"
SENDER = "+15005550006"
OWNER = "acme"
HOOK = "https://hooks.example.com/twilio-jobs"
KOMBU_SEP = "\x06\x16"
QUEUE = "twilio_jobs"
WORKER = "w1"
CHANNEL = "w1/1"


# -- servers -----------------------------------------------------------------------------------


def cluster_port() -> int:
    """A free port whose cluster bus port (+10,000) is free too: at most 55,535."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(30000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def _server(tmp: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    workdir = tmp / str(port)
    workdir.mkdir()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    argv += ["--save", "", "--appendonly", "no", "--protected-mode", "no", *extra]
    log = open(workdir / "log", "wb")  # noqa: SIM115 - the process holds it
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def _wait_ping(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5).ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def servers() -> Iterator[tuple[int, list[int]]]:
    """A standalone Redis and a 3-master cluster; yields (standalone port, master ports)."""
    tmp = Path(tempfile.mkdtemp(prefix="tj-cluster-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        single = free_port()
        procs.append(_server(tmp, single))
        masters = [cluster_port() for _ in range(3)]
        for port in masters:
            conf = f"nodes-{port}.conf"
            procs.append(_server(tmp, port, "--cluster-enabled", "yes", "--cluster-config-file",
                                 conf, "--cluster-node-timeout", "5000"))  # fmt: skip
        for port in [single, *masters]:
            _wait_ping(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in masters),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        for port in masters:
            conn = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
            while conn.cluster("info")["cluster_state"] != "ok":
                if time.monotonic() > deadline:
                    raise TimeoutError("cluster not ok")
                time.sleep(0.1)
        yield single, masters
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


class Cluster:
    """Plain connections to each master, and which master owns a slot."""

    def __init__(self, ports: list[int]) -> None:
        self.nodes = {
            p: redis.Redis(host="127.0.0.1", port=p, decode_responses=True) for p in ports
        }
        self.owner: dict[int, int] = {}
        first = self.nodes[ports[0]]
        for start, end, master, *_ in first.execute_command("CLUSTER", "SLOTS"):
            for slot in range(int(start), int(end) + 1):
                self.owner[slot] = int(master[1])

    def node(self, key: str | None) -> redis.Redis:
        if key is None:
            return next(iter(self.nodes.values()))
        return self.nodes[self.owner[key_slot(key.encode())]]

    def flush(self) -> None:
        for conn in self.nodes.values():
            conn.flushall()


# -- key schemes -------------------------------------------------------------------------------

_BUILDERS_SKIPPED = {"lua_constants", "_tenant"}


@dataclass
class Scheme:
    name: str
    tag: str  # '' for today's keys
    kombu: dict[str, str] = field(default_factory=dict)

    def kombu_key(self, name: str) -> str:
        return f"{{{self.tag}}}{name}" if self.tag else name


def apply_scheme(scheme: Scheme, originals: dict[str, Any]) -> None:
    """Patch twilio_jobs.keys (builders and constants) to the scheme; clear the script cache."""
    from twilio_jobs import keys, scripts

    for name, value in originals.items():
        setattr(keys, name, value)
    if scheme.tag:
        head = f"{keys.PREFIX}{{{scheme.tag}}}:"

        def retag(key: str) -> str:
            return head + key[len(keys.PREFIX) :] if key.startswith(keys.PREFIX) else key

        for name, value in originals.items():
            if name == "PREFIX" or name in _BUILDERS_SKIPPED:
                continue
            if callable(value):

                def wrapped(*args: Any, _f: Callable[..., Any] = value) -> Any:
                    out = _f(*args)
                    return retag(out) if isinstance(out, str) else out

                setattr(keys, name, wrapped)
            elif isinstance(value, str):
                setattr(keys, name, retag(value))
    scripts.constants.cache_clear()
    scripts.source.cache_clear()


def key_originals() -> dict[str, Any]:
    from twilio_jobs import keys

    return {
        name: value
        for name, value in vars(keys).items()
        if not name.startswith("__")
        and (isinstance(value, str) or (callable(value) and getattr(value, "__module__", "") ==
                                         keys.__name__))
    }  # fmt: skip


# -- seed --------------------------------------------------------------------------------------


@dataclass
class Seed:
    jobs: list[str]  # single sends, queued
    later: str  # a single send with sendAt: scheduled
    campaign: str
    campaign_jobs: list[str]
    dumps: dict[str, bytes]  # today's key -> DUMP
    message: str  # a task message as the broker holds it
    digests: dict[str, str]


def seed(port: int) -> Seed:
    """Jobs and a campaign written by the real client library on the standalone Redis."""
    os.environ.update(
        {
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "TWILIO_JOBS_SECRET_KEY": SECRET_KEY,
            "TWILIO_API_BASE_URL": "http://127.0.0.1:9",
        }
    )
    from twilio_jobs import keys
    from twilio_jobs.client import Client
    from twilio_jobs.schemas import JobKind
    from twilio_jobs.settings import get_settings

    get_settings.cache_clear()
    client = Client()
    sms = {"accountSid": ACCOUNT, "accountToken": TOKEN, "from": SENDER, "body": "hello",
           "callbackUrl": HOOK}  # fmt: skip
    jobs = [
        client.submit(JobKind.sendSms, {**sms, "to": f"+1415555{i:04d}"}, owner=OWNER).job_id
        for i in range(6)
    ]
    later = client.submit(
        JobKind.sendSms,
        {
            **sms,
            "to": "+14155559999",
            "sendAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400)),
        },
        owner=OWNER,
    ).job_id
    created = client.create_campaign(
        kind="sendSms",
        account_sid=ACCOUNT,
        account_token=TOKEN,
        from_=SENDER,
        body="Hi {{name}}",
        callback_url=HOOK,
        recipients=[{"to": f"+1415666{i:04d}", "name": f"n{i}"} for i in range(6)],
        owner=OWNER,
    )
    campaign = str(created.campaignId)
    conn = redis.Redis(host="127.0.0.1", port=port)
    campaign_jobs = [x.decode() for x in conn.lrange(keys.campaign_jobs(campaign), 0, -1)]
    dumps = {}
    for key in [keys.job(j) for j in [*jobs, later, *campaign_jobs]] + [keys.campaign(campaign)]:
        dumped = conn.dump(key)
        assert dumped is not None, key
        dumps[key] = dumped
    message = conn.lindex(QUEUE, -1)
    assert message is not None
    digests = {j: client.cipher.digest(f"+1415777{i:04d}") for i, j in enumerate(jobs)}
    client.close()
    conn.flushall()
    return Seed(jobs, later, campaign, campaign_jobs, dumps, message.decode(), digests)


def restore(seed_: Seed, scheme: Scheme, write: Callable[[str], redis.Redis]) -> None:
    """The seeded records under the scheme's key names, on whichever server owns them."""
    from twilio_jobs import keys

    today = {**{f"tj:job:{j}": keys.job(j) for j in
                [*seed_.jobs, seed_.later, *seed_.campaign_jobs]},
             f"tj:campaign:{seed_.campaign}": keys.campaign(seed_.campaign)}  # fmt: skip
    for old, new in today.items():
        write(new).restore(new, 0, seed_.dumps[old], replace=True)
    # What else the client wrote and the scripts read: the schedule entry of the scheduled
    # job, the campaign's counts, a queued task message.
    write(keys.SCHEDULE).zadd(keys.SCHEDULE, {seed_.later: 1.0})
    counts = keys.campaign_counts(seed_.campaign)
    write(counts).hset(counts, mapping={"queued": len(seed_.campaign_jobs)})
    queue = scheme.kombu_key(QUEUE)
    write(queue).lpush(queue, seed_.message)
    binding = scheme.kombu_key("_kombu.binding.") + QUEUE
    write(binding).sadd(binding, f"{QUEUE}{KOMBU_SEP}{KOMBU_SEP}{queue}")
    workers = keys.WORKERS
    write(workers).zadd(workers, {"w-dead": 1.0})


# Files of functions that other scripts include; never called by themselves.
LIBRARIES = {"campaign_gate", "gates", "inflight", "lifecycle", "outbox", "pacing", "prove", "rate"}


# -- the calls ---------------------------------------------------------------------------------


@dataclass
class Call:
    label: str
    script: str
    keys: list[str]
    args: list[Any]
    caller: str


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


class Life:
    """The scripts in the order of a job's life, with the state each call leaves for the
    next (leases, delivery ids), as their callers pass them."""

    def __init__(self, seed_: Seed, scheme: Scheme) -> None:
        self.s = seed_
        self.scheme = scheme
        self.state: dict[str, str] = {}

    def calls(self) -> Iterator[Call]:  # noqa: PLR0915 - one call per script, in order
        from twilio_jobs import keys, scripts

        s, st, now = self.s, self.state, time.time()
        j1, j2, j3 = s.jobs[0], s.jobs[1], s.jobs[2]
        c1, c2 = s.campaign_jobs[0], s.campaign_jobs[1]
        ttl = 7 * 24 * 3600
        args: list[Any] = [ttl, f"{now:.3f}"]
        for j in s.jobs[3:]:
            args += [j, OWNER, "queued", s.digests.get(j, "")]
        yield Call("index new single sends", "index_jobs", [], args, "store.py (writer)")
        args = [ttl, f"{now:.3f}", repr(now + 300)]
        for i in range(3):
            fields = ["kind", "sendSms", "status", "queued", "attempts", "0", "owner", OWNER,
                      "accountSid", ACCOUNT, "createdAt", now_iso(), "params", "{}"]  # fmt: skip
            args += [f"ej{i}{secrets.token_hex(4)}", f"d{i:03x}", "", len(fields) // 2, *fields]
        yield Call("write a batch of single sends", "enqueue_jobs", [keys.SCHEDULE, "twilio_jobs"],
                   args, "writer.py")  # fmt: skip
        shared = ["status", "queued", "kind", "sendSms", "accountSid", ACCOUNT, "owner",
                  OWNER, "campaignId", s.campaign, "callbackUrl", HOOK,
                  "createdAt", now_iso()]  # fmt: skip
        args = [json.dumps(shared), ttl, f"{now:.3f}"]
        for i in range(3):
            params = {"To": f"+1415888{i:04d}", "From": SENDER, "Body": "Hi"}
            args += [f"wj{i}{secrets.token_hex(4)}", json.dumps(params), f"d{i:03x}"]
        yield Call("write a campaign chunk", "write_jobs", [], args, "campaigns.py")
        for job, label in ((j1, "single send"), (c1, "campaign job")):
            lease = secrets.token_hex(8)
            st[f"lease:{job}"] = lease
            yield Call(f"claim ({label})", "claim",
                       [keys.job(job), keys.SCHEDULE, keys.worker_claims(WORKER)],
                       [repr(now), "30", lease, now_iso(), job, WORKER], "ledger.py")  # fmt: skip
        sid = "SM" + secrets.token_hex(16)
        st["sid"] = sid
        fields = {"status": "succeeded", "twilioSid": sid, "updatedAt": now_iso()}
        yield Call("settle succeeded", "settle", [keys.job(j1), keys.SCHEDULE, keys.sid(sid)],
                   [st[f"lease:{j1}"], json.dumps(fields), json.dumps(["lease", "leaseUntil"]),
                    "", j1, sid, ttl], "ledger.py")  # fmt: skip
        err = json.dumps({"code": 21211, "message": "invalid To"})
        fields = {"status": "failed", "error": err, "updatedAt": now_iso()}
        yield Call("settle failed (campaign)", "settle",
                   [keys.job(c1), keys.SCHEDULE, keys.sid("-")],
                   [st[f"lease:{c1}"], json.dumps(fields), "[]", "", c1, "", ttl],
                   "ledger.py")  # fmt: skip
        yield Call("take a SID", "take_sid", [keys.sid("SM" + "0" * 32)], [j2, ttl], "ledger.py")
        yield Call("delivery status", "delivery_status", [keys.job(j1)],
                   ["undelivered", "4", "30003", now_iso(), sid],
                   "status_callbacks.py")  # fmt: skip
        yield Call("webhook event by hand", "webhook_enqueue", [keys.job(j1)], ["job.succeeded"],
                   "outbox.py")  # fmt: skip
        delivery = st.get("delivery", f"{j1}-e1")
        lease = secrets.token_hex(8)
        yield Call("webhook claim", "webhook_claim", [keys.webhook(delivery),
                   keys.WEBHOOK_SCHEDULE], [repr(now), repr(now + 30), lease, delivery],
                   "outbox.py")  # fmt: skip
        state = json.dumps({"id": delivery, "event": "job.succeeded", "status": "failed"})
        four = [keys.webhook(delivery), keys.WEBHOOK_SCHEDULE, keys.WEBHOOKS_FAILED, keys.job(j1)]
        yield Call("webhook finish (failed)", "webhook_finish", four,
                   [lease, "failed", "HTTP 500", now_iso(), "", delivery, repr(now), state],
                   "outbox.py")  # fmt: skip
        yield Call("webhook replay", "webhook_replay", four, [delivery, repr(now + 1), state],
                   "outbox.py")  # fmt: skip
        lease = secrets.token_hex(8)
        st[f"lease:{c2}"] = lease
        yield Call("claim (to hand back)", "claim",
                   [keys.job(c2), keys.SCHEDULE, keys.worker_claims(WORKER)],
                   [repr(now), "30", lease, now_iso(), c2, WORKER], "ledger.py")  # fmt: skip
        yield Call("unclaim (pacing)", "unclaim", [keys.job(c2), keys.SCHEDULE],
                   [lease, now_iso(), c2, repr(now + 5), "queued"], "gates.py")  # fmt: skip
        yield Call("cancel", "cancel", [keys.job(j2), keys.SCHEDULE],
                   [now_iso(), json.dumps({"message": "cancelled"}), "null", j2],
                   "store.py")  # fmt: skip
        if "forget" in scripts.names():  # lua/forget.lua (main after cc124bf)
            j4 = s.jobs[3]
            yield Call("take back a refused job", "forget", [keys.job(j4), keys.SCHEDULE],
                       [j4, s.digests.get(j4, "")], "writer.py")  # fmt: skip
        yield Call("retry a failed job", "reopen", [keys.job(c1)], [now_iso(), "", "0"],
                   "store.py")  # fmt: skip
        yield Call("release due jobs", "release", [keys.SCHEDULE], [repr(now), s.later, j3],
                   "scheduler.py")  # fmt: skip
        ckeys = [keys.campaign(s.campaign), keys.campaign_parked(s.campaign)]
        yield Call("pause a campaign", "campaign_state", ckeys, ["paused"], "campaign_state.py")
        yield Call("resume a campaign", "campaign_state", ckeys, ["active"], "campaign_state.py")
        lane = [keys.in_flight(ACCOUNT), keys.aimd(ACCOUNT), keys.rate(ACCOUNT, SENDER),
                keys.campaign(s.campaign)]  # fmt: skip
        yield Call("acquire send slots", "acquire", lane,
                   ["", "5", "30", f"{WORKER}:1", "100", "0.01", "5", "1"],
                   "pacing/pacer.py")  # fmt: skip
        yield Call("backlog place", "backlog",
                   [keys.backlog(ACCOUNT, SENDER), keys.rate(ACCOUNT, SENDER)], ["", "0.01", "5"],
                   "pacing/pacer.py")  # fmt: skip
        yield Call("429: cut in-flight", "throttle", [keys.aimd(ACCOUNT), keys.AIMD_ACCOUNTS],
                   ["", "100", "1", "2", "1", ACCOUNT], "pacing/pacer.py")  # fmt: skip
        yield Call("heartbeat", "heartbeat", [keys.WORKERS], [WORKER, CHANNEL], "heartbeat.py")
        yield Call("reap dead workers", "reap", [keys.WORKERS], ["30", "10"], "heartbeat.py")
        yield Call("reap a dead worker's claims", "reap_claims", [keys.worker_claims(WORKER)],
                   [WORKER, repr(now)], "heartbeat.py")  # fmt: skip
        yield Call("scheduler lock", "scheduler_lock", [keys.SCHEDULER_LOCK],
                   [secrets.token_hex(8), "5000"], "scheduler.py")  # fmt: skip
        msid = "SM" + secrets.token_hex(16)
        entry = json.dumps({"reason": "STOP", "at": now_iso()})
        yield Call("inbound STOP", "inbound",
                   [keys.suppressed(ACCOUNT), keys.inbound_seen(ACCOUNT, msid),
                    keys.inbound_counts(ACCOUNT)],
                   ["stop", "* +14155550100", entry, "86400", f"in-{msid}", msid, HOOK,
                    json.dumps({"event": "inbound.message"}), str(ttl * 1000)],
                   "inbound.py")  # fmt: skip
        k = self.scheme.kombu_key
        yield Call("broker take", "take",
                   [k("unacked"), k("unacked_index"), keys.worker_tags(CHANNEL), keys.WORKERS,
                    k(QUEUE)], [repr(now), CHANNEL], "worker/broker.py")  # fmt: skip
        yield Call("broker restore", "restore",
                   [k("unacked"), k("unacked_index"), keys.worker_tags(CHANNEL)],
                   [k("_kombu.binding."), KOMBU_SEP], "worker/broker.py")  # fmt: skip

    def after(self, call: Call, reply: Any) -> None:
        if call.script == "webhook_enqueue" and reply:
            self.state["delivery"] = str(reply)


# -- running -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    touched: list[str] = field(default_factory=list)
    reply: str = ""


class Recorder:
    """MONITOR on one server: the keys that Lua touched between two markers."""

    KEY = re.compile(r"^(tj:|\{b0\}|unacked$|unacked_index$|_kombu\.|twilio_jobs$)")

    def __init__(self, port: int) -> None:
        self.port = port
        self.lines: list[tuple[str, str]] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        with redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True
        ).monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                self.lines.append((str(command.get("client_type")), str(command["command"])))
                if self._stop.is_set() and command["command"].startswith("ECHO __end"):
                    return

    def between(self, start: str, end: str) -> list[str]:
        deadline = time.monotonic() + 5
        while not any(c == f"ECHO {end}" for _, c in self.lines):
            if time.monotonic() > deadline:
                raise TimeoutError("monitor marker")
            time.sleep(0.005)
        out: list[str] = []
        inside = False
        for kind, command in self.lines:
            if command == f"ECHO {start}":
                inside = True
            elif command == f"ECHO {end}":
                break
            elif inside and kind == "lua":
                parts = command.split(" ")
                out += [p for p in parts[1:] if self.KEY.match(p)]
        return out

    def stop(self, conn: redis.Redis) -> None:
        self._stop.set()
        conn.echo("__end")
        self.thread.join(5)


def error_text(exc: Exception) -> str:
    text = str(exc).split("\n")[0]
    for marker in ("don't hash to the same slot", "non local key", "do not hash to the same slot",
                   "MOVED"):  # fmt: skip
        if marker in text:
            return {
                "don't hash to the same slot": "CROSSSLOT (declared KEYS)",
                "non local key": "Lua-built key on another node",
                "do not hash to the same slot": "Lua-built key in another slot",
                "MOVED": "MOVED",
            }[marker]
    return "error: " + text[:80]


def snapshot(source: redis.Redis) -> dict[str, tuple[bytes, int]]:
    """Every key of `source`: its DUMP and PTTL."""
    out = {}
    for key in source.scan_iter(count=1000):
        dumped = source.dump(key)
        if dumped is not None:
            out[key.decode()] = (dumped, int(source.pttl(key)))
    return out


def load(cluster: Cluster, snap: dict[str, tuple[bytes, int]]) -> None:
    """The cluster holds the snapshot, each key on its slot's master."""
    cluster.flush()
    for key, (dumped, pttl) in snap.items():
        cluster.node(key).restore(key, max(pttl, 0), dumped, replace=True)


def on_cluster(cluster: Cluster, sha: str, call: Call, route: str | None = None) -> str:
    node = cluster.node(route or (call.keys[0] if call.keys else None))
    try:
        node.evalsha(sha, len(call.keys), *call.keys, *call.args)
        return "OK"
    except redis.ResponseError as exc:
        return error_text(exc)


def run_scheme(seed_: Seed, scheme: Scheme, single_port: int, cluster: Cluster,
               originals: dict[str, Any]) -> list[tuple[Call, Outcome, str]]:  # fmt: skip
    from twilio_jobs import scripts

    apply_scheme(scheme, originals)
    single = redis.Redis(host="127.0.0.1", port=single_port, decode_responses=True)
    single.flushall()
    cluster.flush()
    restore(seed_, scheme, lambda key: single)
    sources = {name: scripts.source(name) for name in scripts.names()}
    shas = {name: single.script_load(src) for name, src in sources.items()}
    for conn in cluster.nodes.values():
        for src in sources.values():
            conn.script_load(src)

    # Each call runs on the cluster first, on a copy of the standalone server's data as it is
    # just before the call (so both see the same state: leases, deliveries, claims), then on
    # the standalone server under MONITOR, which shows every key it touched.
    recorder = Recorder(single_port)
    raw = redis.Redis(host="127.0.0.1", port=single_port)
    life = Life(seed_, scheme)
    results: list[tuple[Call, Outcome, str]] = []
    for i, call in enumerate(life.calls()):
        snap = snapshot(raw)
        load(cluster, snap)
        verdict = on_cluster(cluster, shas[call.script], call)
        single.echo(f"__start{i}")
        outcome = Outcome()
        try:
            reply = single.evalsha(shas[call.script], len(call.keys), *call.keys, *call.args)
            life.after(call, reply)
            outcome.reply = "ok"
        except redis.ResponseError as exc:
            outcome.reply = "error: " + str(exc)[:120]
        single.echo(f"__stop{i}")
        seen = recorder.between(f"__start{i}", f"__stop{i}")
        outcome.touched = list(dict.fromkeys([*call.keys, *seen]))
        if not call.keys and verdict != "OK":
            # No key declared: a cluster client sends it to any master (the first here). If
            # all it touched is in one slot, try that slot's master, as if it declared a key.
            slots = {key_slot(k.encode()) for k in outcome.touched}
            if len(slots) == 1 and cluster.node(outcome.touched[0]) is not cluster.node(None):
                load(cluster, snap)
                again = on_cluster(cluster, shas[call.script], call, outcome.touched[0])
                verdict += "; on its slot's master: " + again
        results.append((call, outcome, verdict))
    recorder.stop(single)
    return results


def family(key: str, seed_: Seed) -> str:
    """A key with its ids replaced by what they are."""
    subs = [(seed_.campaign, "<campaign>"), (ACCOUNT, "<account>"), (SENDER, "<sender>")]
    subs += [(j, "<job>") for j in [*seed_.jobs, seed_.later, *seed_.campaign_jobs]]
    subs += [(d, "<digest>") for d in seed_.digests.values()]
    out = key
    for value, name in subs:
        out = out.replace(value, name)
    out = re.sub(r"<job>-e\d+", "<delivery>", out)
    out = re.sub(r"SM[0-9a-f]{32}", "<sid>", out)
    out = re.sub(r":d[0-9a-f]{3}$", ":<digest>", out)
    out = re.sub(r":wj\d[0-9a-f]{8}", ":<job>", out)
    out = re.sub(r"status:\w+$", "status:<s>", out)
    out = re.sub(r"error:\d+$", "error:<code>", out)
    return out


def same_node(verdict: str, slots: set[int]) -> str:
    """Redis 7.0 lets a script touch an undeclared key of another slot on the same master:
    that works only while the two slots stay on one master (a resharding breaks it)."""
    if verdict == "OK" and len(slots) > 1:
        return f"OK only by luck ({len(slots)} slots, one master)"
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list every key each call touched")
    args = parser.parse_args(argv)
    with servers() as (single_port, masters):
        version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        print(f"redis-server {version.stdout.split()[2]}; standalone :{single_port}; "
              f"cluster masters :{', :'.join(map(str, masters))}")  # fmt: skip
        seed_ = seed(single_port)
        originals = key_originals()
        cluster = Cluster(masters)
        results = {}
        for scheme in (Scheme("today", ""), Scheme("one tag", "b0")):
            results[scheme.name] = run_scheme(seed_, scheme, single_port, cluster, originals)
        apply_scheme(Scheme("today", ""), originals)
    today, tagged = results["today"], results["one tag"]
    rows = []
    families: dict[str, set[str]] = {}
    for (call, outcome, verdict), (_, t_outcome, t_verdict) in zip(today, tagged, strict=True):
        declared = set(call.keys)
        built = [k for k in outcome.touched if k not in declared]
        slots = {key_slot(k.encode()) for k in outcome.touched}
        d_slots = {key_slot(k.encode()) for k in declared}
        t_slots = {key_slot(k.encode()) for k in t_outcome.touched}
        families.setdefault(call.script, set()).update(family(k, seed_) for k in built)
        rows.append([
            call.script, call.label, len(call.keys), len(d_slots), len(built), len(slots),
            same_node(verdict, slots), len(t_slots), same_node(t_verdict, t_slots),
        ])  # fmt: skip
        if args.verbose:
            print(f"{call.script} ({call.label}): reply {outcome.reply}")
            for key in outcome.touched:
                origin = "KEYS" if key in declared else "Lua "
                print(f"   {origin} slot {key_slot(key.encode()):5d} {key}")
    print_table(
        "Lua scripts against a 3-master Redis Cluster (keys: from MONITOR on a standalone run)",
        ["script", "call", "KEYS", "their slots", "keys built in Lua", "slots touched",
         "cluster, keys today", "slots, one tag", "cluster, one tag"],
        rows,
    )  # fmt: skip
    print_table(
        "Keys the scripts build inside Lua (not in KEYS), today's names",
        ["script", "keys built in Lua"],
        [[name, ", ".join(sorted(found))] for name, found in families.items() if found],
    )
    from twilio_jobs import scripts

    called = {r[0] for r in rows}
    missed = [n for n in scripts.names() if n not in called and n not in LIBRARIES]
    if missed:
        print(f"\nnot called here (add them to Life.calls): {', '.join(missed)}")
    # A call that ran only because its slots shared a master counts as failing: another run's
    # ids put them elsewhere.
    failing = sorted({r[0] for r in rows if r[6] != "OK"})
    lucky = sorted({r[0] for r in rows if str(r[6]).startswith("OK only")})
    print(f"\nfail today: {len(failing)} of {len(called)} scripts: {', '.join(failing)}")
    if lucky:
        print(f"... of which ran in this run only because their slots shared a master: "
              f"{', '.join(lucky)}")  # fmt: skip
    t_failing = sorted({r[0] for r in rows if r[8] != "OK"})
    print(f"not OK with one tag: {', '.join(t_failing) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
