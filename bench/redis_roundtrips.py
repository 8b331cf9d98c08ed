"""Redis round trips and commands per single send and per campaign job, end to end, counted on
the wire by a small TCP proxy in front of the benchmark Redis.

    python bench/redis_roundtrips.py [--n 300] [--campaign-n 2000] [--quick]

Every process of the service reaches Redis through the proxy, one listening port per side
(the API, the worker, this process's client library for the campaign), so each connection is
known by side. On each connection the proxy counts a **round trip** each time the client writes
after the server last answered (a pipeline written in several TCP segments is one round trip;
what the server pushes unasked adds none) and parses the client's RESP to count **commands**
and to label each round trip by what it carries:

- API accept: everything the API process sends;
- broker take: kombu taking a task message (`lua/take.lua`, BRPOP, the BLMOVE peek, the unacked
  record);
- claim (`lua/claim.lua`), pacing acquire / release (`lua/acquire.lua`, `lua/release.lua`, ...),
  settle (`lua/settle.lua`), ack (kombu's ZREM/HDEL of the unacked entry);
- anything else by its commands (the scheduler, heartbeats, the stall watch...).
A round trip that carries several of them is labelled with all, joined by `+`.

Scripts are named by the SHA1 of their text as `twilio_jobs.scripts.source()` builds it, and by
any script text seen on the wire (SCRIPT LOAD, EVAL).

First the worker idles for --idle seconds: its background round trips per second by label
(BLMOVE peeks, heartbeats, the scheduler) are the **background**, and that rate times each
phase's length is taken off the phase's total for the per-job figure (the raw figure is
printed too). Then N single sends are posted one at a time over one keep-alive HTTP connection
(so the API's coalescing writer has one job per write: the worst case; `--connections` more)
and the clock stops when every job is `succeeded` and nothing is queued or unacknowledged.
Then one campaign of --campaign-n recipients through `Client.create_campaign`, until nothing is
queued, unacknowledged or scheduled. One worker process (`celery -A worker worker`, threads
x64), the fake Twilio at 100 ms, pacing lifted as in every drain (bench/harness.py).

The proxy runs on a thread of this process and slows every round trip a little: it counts
them, it measures no speed. Prints the GOAL line for <= 6 round trips per single send.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import campaign_slot, goals  # noqa: E402
from bench.harness import (  # noqa: E402
    PY,
    QUEUE,
    REDIS_URL,
    SMS,
    FakeTwilioProc,
    Proc,
    apply_env,
    connect,
    flush,
    free_port,
    job_statuses,
    machine_line,
    our_worker,
    print_table,
    queue_idle,
    service_env,
    wait_for,
)

# -- the proxy ---------------------------------------------------------------------------------


@dataclass
class RoundTrip:
    side: str
    conn: int
    at: float
    commands: list[tuple[str, ...]] = field(default_factory=list)


class Resp:
    """Incremental parser of what a client sends: RESP arrays of bulk strings (and inline
    commands). Keeps each command's name and first two arguments."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, ...]]:
        self.buf += data
        out = []
        while True:
            parsed = self._one()
            if parsed is None:
                return out
            out.append(parsed)

    def _one(self) -> tuple[str, ...] | None:
        buf = self.buf
        if not buf:
            return None
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        if buf[:1] != b"*":  # inline command
            words = bytes(buf[:end]).split()
            del buf[: end + 2]
            return tuple(w.decode("latin-1") for w in words[:3]) or ("",)
        count = int(buf[1:end])
        pos, args = end + 2, []
        for _ in range(count):
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(buf[pos + 1 : line_end])
            start = line_end + 2
            if len(buf) < start + size + 2:
                return None
            if len(args) < 3:  # the name, then a script's SHA1 or text, or a key
                args.append(bytes(buf[start : start + size]))
            pos = start + size + 2
        del buf[:pos]
        self.on_args(args)
        if args and args[0].upper() == b"EVAL" and len(args) > 1:
            args[1] = hashlib.sha1(args[1]).hexdigest().encode()  # named like an EVALSHA
        return tuple(a.decode("latin-1")[:200] for a in args[:3])

    def on_args(self, args: list[bytes]) -> None:
        """Learns script texts seen on the wire (SCRIPT LOAD body, EVAL body)."""
        if not args:
            return
        name = args[0].upper()
        body = None
        if name == b"SCRIPT" and len(args) >= 3 and args[1].upper() == b"LOAD":
            body = args[2]
        elif name == b"EVAL" and len(args) >= 2:
            body = args[1]
        if body is not None:
            SCRIPTS.setdefault(hashlib.sha1(body).hexdigest(), script_name(body.decode()))


def script_name(text: str) -> str:
    """The lua/ file whose text comes last in a composed script (its body; includes first)."""
    from twilio_jobs import scripts

    best, where = "script?", -1
    for name in scripts.names():
        found = text.rfind(scripts._text(name))
        if found > where:
            best, where = name, found
    return best


def known_scripts() -> dict[str, str]:
    from twilio_jobs import scripts

    return {
        hashlib.sha1(scripts.source(name).encode()).hexdigest(): name for name in scripts.names()
    }


SCRIPTS: dict[str, str] = {}


class Proxy:
    """Listens on one port per side and forwards every connection to Redis, recording its
    round trips. Runs its own event loop on a daemon thread."""

    def __init__(self, upstream: tuple[str, int], sides: list[str]) -> None:
        self.upstream = upstream
        self.ports = {side: free_port() for side in sides}
        self.trips: list[RoundTrip] = []
        self.connections: Counter[str] = Counter()
        self._ids = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redis-proxy", daemon=True)

    def start(self) -> Proxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def url(self, side: str, base: str = REDIS_URL) -> str:
        parts = urlsplit(base)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.ports[side]}"))

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            for side, port in self.ports.items():
                await asyncio.start_server(
                    lambda r, w, side=side: self._handle(side, r, w), "127.0.0.1", port
                )
            self._ready.set()

        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    async def _handle(
        self, side: str, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self._ids += 1
        conn_id = self._ids
        self.connections[side] += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        state = {"answered": True}
        current: list[RoundTrip | None] = [None]
        parser = Resp()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if state["answered"] or current[0] is None:
                    current[0] = RoundTrip(side, conn_id, time.monotonic())
                    self.trips.append(current[0])
                    state["answered"] = False
                current[0].commands += parser.feed(data)
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                state["answered"] = True
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        for writer in (client_w, server_w):
            writer.close()

    def since(self, t0: float, t1: float | None = None) -> list[RoundTrip]:
        end = t1 if t1 is not None else float("inf")
        return [trip for trip in list(self.trips) if t0 <= trip.at < end]


# -- labels ------------------------------------------------------------------------------------

PACING = {"acquire", "release", "pacing", "rate", "inflight", "throttle", "backlog", "gates"}
UNACKED = ("unacked", "unacked_index")


def label_of(command: tuple[str, ...]) -> str:
    name = command[0].upper() if command else ""
    if name in ("EVALSHA", "EVAL"):
        arg = command[1] if len(command) > 1 else ""
        script = SCRIPTS.get(arg, "script?")
        if script == "take":
            return "broker take"
        if script in ("claim", "take_sid"):
            return "claim"
        if script == "acquire":
            return "pacing acquire"
        if script == "release":
            return "pacing release"
        if script in PACING:
            return f"pacing ({script})"
        if script == "settle":
            return "settle"
        return f"script {script}"
    key = command[1] if len(command) > 1 else ""
    if name in ("BRPOP", "BLMOVE", "BLPOP", "LMOVE", "RPOP"):
        return "broker take"
    if name in ("ZADD", "HSET") and key in UNACKED:
        return "broker take"
    if name in ("ZREM", "HDEL") and key in UNACKED:
        return "ack"
    if name == "SREM" and key.startswith("tj:worker:") and key.endswith(":tags"):
        return "ack"  # the delivery's tag leaves the consumer's set with the ack
    if name == "ZREM" and key.startswith("tj:pace:inflight:"):
        return "pacing release"  # the lease leaves the account's in-flight set
    if name in ("MULTI", "EXEC"):
        return ""
    if name == "SCRIPT":
        return f"SCRIPT {key.upper()}"
    return f"other {name} {shape(key)}".rstrip()


def shape(key: str) -> str:
    """A key with its ids left out: its first two `:` segments."""
    return ":".join(key.split(":")[:2]) if key else ""


def label(trip: RoundTrip) -> str:
    if trip.side == "api":
        return "API accept"
    seen: list[str] = []
    for command in trip.commands:
        found = label_of(command)
        if found and found not in seen:
            seen.append(found)
    text = "+".join(seen) or "MULTI/EXEC only"
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Phase:
    name: str
    jobs: int
    seconds: float
    trips: list[RoundTrip]


def breakdown(
    phase: Phase, background: dict[tuple[str, str], float], idle_seconds: float
) -> tuple[list[list[object]], float, float, float]:
    """Rows by side and label: round trips, commands, per job raw, background, net per job."""
    trips: Counter[tuple[str, str]] = Counter()
    commands: Counter[tuple[str, str]] = Counter()
    for trip in phase.trips:
        key = (trip.side, label(trip))
        trips[key] += 1
        commands[key] += len(trip.commands)
    keys_ = set(trips) | set(background)
    rows: list[list[object]] = []
    total = total_net = total_commands = 0.0
    for key in sorted(keys_, key=lambda k: (-trips.get(k, 0), k)):
        side, name = key
        bg = background.get(key, 0.0) * phase.seconds / idle_seconds
        count = trips.get(key, 0)
        net = max(0.0, count - bg)
        total += count
        total_net += net
        total_commands += commands.get(key, 0)
        if count == 0 and bg < 0.5:
            continue
        rows.append([side, name, count, commands.get(key, 0), count / phase.jobs,
                     commands.get(key, 0) / phase.jobs, bg, net / phase.jobs])  # fmt: skip
    per = phase.jobs
    rows.append(["all", "", int(total), int(total_commands), total / per,
                 total_commands / per, total - total_net, total_net / per])  # fmt: skip
    return rows, total / phase.jobs, total_net / phase.jobs, total_commands / phase.jobs


HEADERS = ["side", "round trip carries", "round trips", "commands", "trips/job", "cmds/job",
           "background trips", "net trips/job"]  # fmt: skip


# -- the run -----------------------------------------------------------------------------------


def post_sends(port: int, n: int, connections: int) -> list[str]:
    """n POST /api/twilio/sendSms over `connections` keep-alive connections (threads)."""
    body = json.dumps(SMS)
    ids: list[str] = []
    lock = threading.Lock()

    def one_connection(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for _ in range(count):
                conn.request(
                    "POST", "/api/twilio/sendSms", body, {"Content-Type": "application/json"}
                )
                resp = conn.getresponse()
                data = json.loads(resp.read())
                if resp.status >= 300:
                    raise RuntimeError(f"sendSms answered {resp.status}: {data}")
                with lock:
                    ids.append(str(data["jobId"]))
        finally:
            conn.close()

    shares = [n // connections + (1 if i < n % connections else 0) for i in range(connections)]
    threads = [threading.Thread(target=one_connection, args=(k,)) for k in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(ids) != n:
        raise RuntimeError(f"{len(ids)} of {n} sends accepted")
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000, help="single sends")
    parser.add_argument("--campaign-n", type=int, default=5_000, help="campaign recipients")
    parser.add_argument("--connections", type=int, default=1, help="HTTP connections")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of background")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--quick", action="store_true", help="300 sends, 2,000 recipients")
    args = parser.parse_args(argv)
    n = 300 if args.quick else args.n
    campaign_n = 2_000 if args.quick else args.campaign_n
    print(machine_line())
    SCRIPTS.update(known_scripts())
    upstream = urlsplit(REDIS_URL)
    sides = ["api", "worker", "client"]
    proxy = Proxy((upstream.hostname or "127.0.0.1", upstream.port or 6379), sides).start()
    flush()
    conn = connect()
    phases: list[Phase] = []
    with FakeTwilioProc(latency=args.latency) as fake:
        base = service_env(fake.url, TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT="100")
        api_port = free_port()
        api_env = {**base, "REDIS_URL": proxy.url("api")}
        api = Proc(
            "api",
            [PY, "-m", "uvicorn", "--factory", "producer.api:create_app", "--port", str(api_port),
             "--host", "127.0.0.1", "--no-access-log"],
            api_env,
            ready=["Application startup complete"],
        )  # fmt: skip
        worker = our_worker({**base, "REDIS_URL": proxy.url("worker")})
        apply_env({**base, "REDIS_URL": proxy.url("client")})
        with api, worker:
            post_sends(api_port, 20, 1)  # warm up: connections, scripts, the token cache
            wait_for(lambda: queue_idle(conn, QUEUE), 60, what="warm-up drained")
            time.sleep(1.0)
            t0 = time.monotonic()
            time.sleep(args.idle)
            t1 = time.monotonic()
            idle = Phase("background (idle worker)", 1, t1 - t0, proxy.since(t0, t1))

            ids = post_sends(api_port, n, args.connections)
            ids_set = set(ids)
            wait_for(
                lambda: (
                    queue_idle(conn, QUEUE)
                    and job_statuses(conn, ids_set).get("succeeded") == len(ids_set)
                ),
                120 + n / 10,
                what="single sends succeeded",
            )
            t2 = time.monotonic()
            phases.append(Phase(f"{n:,} single sends", n, t2 - t1, proxy.since(t1, t2)))

            if campaign_slot.available():
                from twilio_jobs import keys
                from twilio_jobs.client import Client

                time.sleep(1.0)
                t3 = time.monotonic()
                client = Client()
                campaign_slot.create(client, campaign_n)
                client.close()
                wait_for(
                    lambda: queue_idle(conn, QUEUE) and not conn.zcard(keys.SCHEDULE),
                    120 + campaign_n / 20,
                    what="campaign drained",
                )
                t4 = time.monotonic()
                phases.append(
                    Phase(f"campaign of {campaign_n:,}", campaign_n, t4 - t3, proxy.since(t3, t4))
                )
            if fake.stats()["created_count"] != n + 20 + (campaign_n if len(phases) > 1 else 0):
                raise RuntimeError(f"the fake created {fake.stats()['created_count']} messages")
    flush()
    background: Counter[tuple[str, str]] = Counter()
    for trip in idle.trips:
        background[(trip.side, label(trip))] += 1
    print(
        f"\nbackground: {len(idle.trips)} round trips in {idle.seconds:.1f} s of idle worker "
        f"({len(idle.trips) / idle.seconds:.1f}/s): "
        + ", ".join(f"{side} {name} {c}" for (side, name), c in background.most_common())
    )
    bg = {key: float(count) for key, count in background.items()}
    summary = []
    for phase in phases:
        rows, raw, net, cmds = breakdown(phase, bg, idle.seconds)
        print_table(
            f"Redis round trips, {phase.name} ({phase.seconds:.1f} s; fake at "
            f"{args.latency * 1000:.0f} ms)",
            HEADERS,
            rows,
        )
        summary.append([phase.name, raw, net, cmds])
    print_table(
        "Per job, end to end (net = less the idle worker's background over the same time)",
        ["what", "round trips/job (raw)", "round trips/job (net)", "commands/job (raw)"],
        summary,
    )
    print(f"proxy connections by side: {dict(proxy.connections)}")
    single = summary[0]
    goals.emit(
        "roundtrips_per_send",
        float(single[2]),  # type: ignore[arg-type]
        f"raw {single[1]:.2f}, {single[3]:.1f} commands/send; {n:,} sends over "
        f"{args.connections} HTTP connection(s)",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
