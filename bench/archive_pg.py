"""Finished job records and the dashboard's search: in Redis (as today) vs in PostgreSQL.

    python bench/archive_pg.py [--n 100000] [--tenants 100] [--queries 200]

Generates N finished records of the shape a real drain leaves (the fields of a succeeded single
send as the worker writes them: the Twilio resource in `result`, the webhook state, the ledger
fields; see `record()`), spread over 7 days and `--tenants` tenants (a few large, many small),
half of them in campaigns, ~4% failed with an error code, ~2% undelivered. Then:

- **Redis** (a server of its own, temporary): each record as the lifecycle leaves it (a hash
  with its TTL, its entries in the tenant's indexes: all, status, recipient bucket, campaign,
  error code; its SID key). Memory per record from `used_memory`; the time Redis spent
  (`used_cpu_*_main_thread`) to write them; the searches through `twilio_jobs.search.Search`,
  the code behind `GET /api/jobs` and the dashboard.
- **PostgreSQL** (`BENCH_PG_URL`, default `postgresql://postgres@127.0.0.1:5432/test`; a schema
  of its own, dropped at the end): a table partitioned by day (retention = dropping a day's
  partition) with the indexes those searches need, filled with COPY in batches (and a sample
  with multi-row INSERTs); rows/s, PostgreSQL CPU per row (all its processes, from /proc),
  WAL bytes per row, bytes per row on disk (table, TOAST, each index); the same searches as
  SQL, p50/p99 over `--queries` runs each.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
import redis  # noqa: E402

from bench.replicas import redis_server  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuv"
DAYS = 7
TTL = DAYS * 24 * 3600
ERRORS = [21211, 21610, 30003, 30005, 30007]
SENDER = "+15005550006"


# -- the records -------------------------------------------------------------------------------


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _rfc2822(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


class Records:
    """N finished records, deterministic for a seed; the same rows go to Redis and PostgreSQL."""

    def __init__(self, n: int, tenants: int, seed: int = 15) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.now = time.time()
        # Tenant sizes ~ 1/rank (a few large, many small); one account per tenant.
        weights = [1 / (i + 1) for i in range(tenants)]
        self.tenants = [f"t{i:03d}" for i in range(tenants)]
        self.accounts = {t: "AC" + hashlib.md5(t.encode()).hexdigest() for t in self.tenants}
        self.weights = weights
        self.campaigns: dict[str, list[str]] = {t: [] for t in self.tenants}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for _ in range(self.n):
            tenant = rng.choices(self.tenants, self.weights)[0]
            account = self.accounts[tenant]
            created = self.now - rng.random() * (TTL - 3600)
            campaign = ""
            if rng.random() < 0.5:
                pool = self.campaigns[tenant]
                if not pool or rng.random() < 0.002:
                    pool.append(uuid.UUID(int=rng.getrandbits(128)).hex)
                campaign = pool[-1] if rng.random() < 0.8 else rng.choice(pool)
            to = f"+1{rng.randint(2_000_000_000, 2_002_000_000)}"
            roll = rng.random()
            status, code, delivery = "succeeded", None, "delivered"
            if roll < 0.04:
                status, code, delivery = "failed", rng.choice(ERRORS), ""
            elif roll < 0.06:
                delivery, code = "undelivered", 30003
            yield self.record(tenant, account, campaign, to, created, status, code, delivery)

    def record(self, tenant: str, account: str, campaign: str, to: str, created: float,
               status: str, code: int | None, delivery: str) -> dict[str, Any]:  # fmt: skip
        """The fields of a finished job as the worker leaves them (compared field by field with
        a record of a real drain: `bench/job_cost.py` leaves them in its Redis)."""
        rng = self.rng
        job_id = uuid.UUID(int=rng.getrandbits(128)).hex
        sid = "SM" + uuid.UUID(int=rng.getrandbits(128)).hex
        done = created + 0.2 + rng.random()
        params = {"From": SENDER, "To": to, "Body": "Your code is 123456. Reply STOP to opt out."}
        uri = f"/2010-04-01/Accounts/{account}/Messages/{sid}"
        fields: dict[str, str] = {
            "accountSid": account,
            "kind": "sendSms",
            "callbackUrl": "https://hooks.example.com/twilio-jobs",
            "createdAt": _stamp(created),
            "leaseHolder": "worker-7:1335:7f6143",
            "status": status,
            "ownCred": "1",
            "updatedAt": _stamp(done),
            "whSeq": "1",
            "params": json.dumps(params, separators=(",", ":")),
            "ledger": "sent" if status == "succeeded" else "failed",
            "owner": tenant,
            "attempts": "1",
            "submittedAt": repr(created + 0.1),
        }
        if campaign:
            fields["campaignId"] = campaign
        if status == "succeeded":
            resource = {
                "account_sid": account, "api_version": "2010-04-01", "body": params["Body"],
                "date_created": _rfc2822(done), "date_sent": None, "date_updated": _rfc2822(done),
                "direction": "outbound-api", "error_code": None, "error_message": None,
                "from": SENDER, "messaging_service_sid": None, "num_media": "0",
                "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid,
                "status": "queued", "subresource_uris": {"media": f"{uri}/Media.json"},
                "to": to, "uri": f"{uri}.json",
            }  # fmt: skip
            fields["twilioSid"] = sid
            fields["result"] = json.dumps(
                {"callback": "success", "contextWrites": {"to": resource}}
            )
            if delivery:
                fields["deliveryStatus"] = delivery
                fields["deliveryRank"] = "5"
            if code:
                fields["errorCode"] = str(code)
        else:
            more = f"https://www.twilio.com/docs/errors/{code}"
            fields["error"] = json.dumps({"code": code, "message": "Twilio refused the message",
                                          "moreInfo": more})  # fmt: skip
            fields["result"] = "null"
        delivery_id = f"{job_id}-e1"
        fields["whLatest"] = delivery_id
        fields["webhook"] = json.dumps({"id": delivery_id, "event": f"job.{status}",
                                        "status": "delivered", "attempts": 1, "lastError": None,
                                        "lastAttemptAt": _stamp(done + 0.05)},
                                       separators=(",", ":"))  # fmt: skip
        return {"id": job_id, "created": created, "to": to, "code": code, "sid": sid,
                "fields": fields}  # fmt: skip


# -- Redis -------------------------------------------------------------------------------------


class PrivateRedis:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tj-archive-"))
        self.proc, self.port = redis_server(self.dir)
        self.conn = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def cpu(self) -> float:
        info = self.conn.info("cpu")
        return float(info["used_cpu_sys_main_thread"]) + float(info["used_cpu_user_main_thread"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_load(server: PrivateRedis, rows: list[dict[str, Any]], cipher: Any) -> dict[str, float]:
    """Each record as the lifecycle leaves a finished job: the hash (TTL: what is left of 7
    days), its index entries (trimmed by score and expiring as lua/lifecycle.lua does), its SID
    key. Written in pipelines of 1,000 records."""
    from twilio_jobs import keys

    conn = server.conn
    conn.flushall()
    time.sleep(0.2)
    mem0, cpu0, t0 = int(conn.info("memory")["used_memory"]), server.cpu(), time.monotonic()
    for start in range(0, len(rows), 1000):
        pipe = conn.pipeline(transaction=False)
        for row in rows[start : start + 1000]:
            f, job_id, score = row["fields"], row["id"], row["created"]
            ttl = max(60, int(score + TTL - time.time()))
            pipe.hset(keys.job(job_id), mapping=f)
            pipe.expire(keys.job(job_id), ttl)
            owner = f["owner"]
            index = [keys.index_all(owner), keys.index_status(owner, f["status"]),
                     keys.index_to(owner, cipher.digest(row["to"]))]  # fmt: skip
            if f.get("campaignId"):
                index.append(keys.index_campaign(owner, f["campaignId"]))
            if row["code"]:
                index.append(keys.index_error(owner, str(row["code"])))
            for key in index:
                pipe.zadd(key, {job_id: score})
                pipe.expire(key, TTL)
            if f.get("twilioSid"):
                pipe.set(keys.sid(f["twilioSid"]), job_id, ex=ttl)
        pipe.execute()
    seconds, cpu = time.monotonic() - t0, server.cpu() - cpu0
    mem = int(conn.info("memory")["used_memory"]) - mem0
    n = len(rows)
    return {"bytes_per_record": mem / n, "rows_per_s": n / seconds, "cpu_us_per_row": cpu * 1e6 / n}


# -- PostgreSQL --------------------------------------------------------------------------------

SCHEMA_SQL = """
CREATE TABLE {s}.jobs (
    job_id      uuid        NOT NULL,
    tenant      text        NOT NULL,
    account_sid text        NOT NULL,
    campaign_id uuid,
    status      text        NOT NULL,
    kind        text        NOT NULL,
    to_digest   bytea       NOT NULL,  -- keyed digest of the recipient, never the number
    error_code  integer,
    twilio_sid  text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    record      {record}    NOT NULL,  -- every other field of the record
    PRIMARY KEY (job_id, created_at)
) PARTITION BY RANGE (created_at);
"""

INDEXES = {
    "tenant, time": "(tenant, created_at DESC)",
    "tenant, status, time": "(tenant, status, created_at DESC)",
    "tenant, recipient digest, time": "(tenant, to_digest, created_at DESC)",
    "tenant, campaign, time": "(tenant, campaign_id, created_at DESC)"
    " WHERE campaign_id IS NOT NULL",
    "tenant, error code, time": "(tenant, error_code, created_at DESC)"
    " WHERE error_code IS NOT NULL",
    "Twilio SID": "(twilio_sid) WHERE twilio_sid IS NOT NULL",
}

COLUMNS = ("job_id", "tenant", "account_sid", "campaign_id", "status", "kind", "to_digest",
           "error_code", "twilio_sid", "created_at", "updated_at", "record")  # fmt: skip
TOP_LEVEL = {"owner", "accountSid", "campaignId", "status", "kind", "twilioSid", "createdAt",
             "updatedAt"}  # fmt: skip


def pg_row(row: dict[str, Any], key: bytes) -> tuple[Any, ...]:
    f = row["fields"]
    rest = {k: v for k, v in f.items() if k not in TOP_LEVEL}
    return (
        uuid.UUID(row["id"]),
        f["owner"],
        f["accountSid"],
        uuid.UUID(f["campaignId"]) if f.get("campaignId") else None,
        f["status"],
        f["kind"],
        hmac.new(key, row["to"].encode(), hashlib.sha256).digest()[:16],
        row["code"],
        f.get("twilioSid"),
        datetime.fromtimestamp(row["created"], UTC),
        datetime.fromisoformat(f["updatedAt"].replace("Z", "+00:00")),
        json.dumps(rest),
    )


def pg_cpu() -> float:
    """User + system CPU of every PostgreSQL process (backends, WAL writer, checkpointer)."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and proc.info["name"].startswith("postgres"):
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


class Pg:
    def __init__(self, url: str, now: float, compact: bool = False) -> None:
        """`compact`: the record column is the JSON compressed by the writer (zlib level 1,
        `bytea`): PostgreSQL compresses a value only when the row passes ~2 KB (TOAST), and a
        finished record's row is just under that."""
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.schema = f"tj_bench_{os.getpid()}{'_z' if compact else ''}"
        self.compact = compact
        self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.conn.execute(f"CREATE SCHEMA {self.schema}")
        record = "bytea" if compact else "jsonb"
        self.conn.execute(SCHEMA_SQL.format(s=self.schema, record=record))
        storage = ""
        day0 = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        for i in range(-DAYS - 1, 2):
            lo, hi = day0 + timedelta(days=i), day0 + timedelta(days=i + 1)
            self.conn.execute(
                f"CREATE TABLE {self.schema}.jobs_{lo:%Y%m%d} PARTITION OF {self.schema}.jobs "
                f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}'){storage}"
            )
        for i, spec in enumerate(INDEXES.values()):
            self.conn.execute(f"CREATE INDEX jobs_ix{i} ON {self.schema}.jobs {spec}")

    def wal(self) -> int:
        return int(self.conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])

    def copy(self, rows: list[tuple[Any, ...]], batch: int) -> None:
        if self.compact:
            rows = [(*row[:-1], zlib.compress(row[-1].encode(), 1)) for row in rows]
        for start in range(0, len(rows), batch):
            with self.conn.transaction(), self.conn.cursor() as cur:
                cols = ", ".join(COLUMNS)
                with cur.copy(f"COPY {self.schema}.jobs ({cols}) FROM STDIN") as copy:
                    for row in rows[start : start + batch]:
                        copy.write_row(row)

    def insert(self, rows: list[tuple[Any, ...]], batch: int) -> None:
        cols = ", ".join(COLUMNS)
        one = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            sql = f"INSERT INTO {self.schema}.jobs ({cols}) VALUES " + ", ".join([one] * len(chunk))
            with self.conn.transaction():
                self.conn.execute(sql, [x for row in chunk for x in row])

    def update_delivery(self, sids: list[str], batch: int) -> None:
        """A late delivery status on archived records: found by Twilio SID, as a status
        callback finds its job (`record.deliveryStatus`, `updated_at`)."""
        patch = json.dumps({"deliveryStatus": "delivered", "deliveryRank": "5"})
        sql = (f"UPDATE {self.schema}.jobs SET record = record || %s::jsonb, "
               "updated_at = now() WHERE twilio_sid = %s")  # fmt: skip
        for start in range(0, len(sids), batch):
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(sql, [(patch, sid) for sid in sids[start : start + batch]])

    def index_sizes(self) -> dict[str, int]:
        """Each declared index, summed over its partitions' indexes."""
        out: dict[str, int] = {}
        for i, name in enumerate(INDEXES):
            size = self.conn.execute(
                """SELECT COALESCE(sum(pg_relation_size(inhrelid)), 0) FROM pg_inherits
                   WHERE inhparent = %s::regclass""",
                (f"{self.schema}.jobs_ix{i}",),
            ).fetchone()[0]
            out[name] = int(size)
        pkey = self.conn.execute(
            """SELECT COALESCE(sum(pg_relation_size(inhrelid)), 0) FROM pg_inherits
               WHERE inhparent = %s::regclass""",
            (f"{self.schema}.jobs_pkey",),
        ).fetchone()[0]
        out["primary key (job id, time)"] = int(pkey)
        return out

    def heap_sizes(self) -> tuple[int, int]:
        heap = toast = 0
        for (oid,) in self.conn.execute(
            "SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass",
            (f"{self.schema}.jobs",),
        ).fetchall():
            h, t = self.conn.execute(
                """SELECT pg_relation_size(%s::oid), COALESCE(pg_total_relation_size(
                       NULLIF((SELECT reltoastrelid FROM pg_class WHERE oid = %s::oid), 0)), 0)""",
                (oid, oid),
            ).fetchone()
            heap += int(h)
            toast += int(t)
        return heap, toast

    def drop(self) -> None:
        self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        self.conn.close()


# -- the searches ------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], times: int) -> tuple[float, float, int]:
    """p50 and p99 in ms, and the rows of the last call."""
    out, got = [], 0
    for _ in range(times):
        t0 = time.perf_counter()
        got = len(fn())
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    return statistics.median(out), out[min(len(out) - 1, int(len(out) * 0.99))], got


def searches(rows: list[dict[str, Any]], tenants: list[str]) -> dict[str, list[Any]]:
    """What each search is asked for, picked from the data: the largest tenants' recipients,
    campaigns, and their error codes."""
    big = tenants[:5]
    rng = random.Random(7)
    mine = [r for r in rows if r["fields"]["owner"] in big]
    return {
        "tenant": big,
        "recipient": [(r["fields"]["owner"], r["to"]) for r in rng.sample(mine, 50)],
        "campaign": list(
            {
                (r["fields"]["owner"], r["fields"]["campaignId"])
                for r in mine
                if r["fields"].get("campaignId")
            }
        )[:50],  # fmt: skip
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--insert-n", type=int, default=20_000, help="rows for the INSERT row")
    args = parser.parse_args(argv)
    from bench.harness import print_table
    from twilio_jobs.crypto import Cipher
    from twilio_jobs.lifecycle import JobStatus
    from twilio_jobs.search import JobQuery, Search

    cipher = Cipher(SECRET_KEY)
    gen = Records(args.n, args.tenants)
    rows = list(gen)
    n = len(rows)
    print(f"{n:,} records, {args.tenants} tenants, {sum(len(c) for c in gen.campaigns.values())}"
          f" campaigns; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    digest_key = b"bench-recipient-digest-key"
    pg_rows = [pg_row(r, digest_key) for r in rows]

    server = PrivateRedis()
    pg = Pg(PG_URL, gen.now)
    lz4 = Pg(PG_URL, gen.now, compact=True)  # record zlib-compressed by the writer
    try:
        # -- writes
        r_load = redis_load(server, rows, cipher)
        cpu0, wal0, t0 = pg_cpu(), pg.wal(), time.monotonic()
        pg.copy(pg_rows, args.batch)
        copy_s, copy_cpu, copy_wal = time.monotonic() - t0, pg_cpu() - cpu0, pg.wal() - wal0
        pg.conn.execute(f"VACUUM ANALYZE {pg.schema}.jobs")
        heap, toast = pg.heap_sizes()
        indexes = pg.index_sizes()
        cpu0, wal0, t0 = pg_cpu(), lz4.wal(), time.monotonic()
        lz4.copy(pg_rows, args.batch)
        lz4_s, lz4_cpu, lz4_wal = time.monotonic() - t0, pg_cpu() - cpu0, lz4.wal() - wal0
        lz4.conn.execute(f"VACUUM ANALYZE {lz4.schema}.jobs")
        lz4_heap, lz4_toast = lz4.heap_sizes()
        lz4_indexes = lz4.index_sizes()
        # multi-row INSERT of a sample, on top (new ids)
        extra = [pg_row(r, digest_key) for r in Records(args.insert_n, args.tenants, seed=16)]
        cpu0, wal0, t0 = pg_cpu(), pg.wal(), time.monotonic()
        pg.insert(extra, args.batch // 10)
        ins_s, ins_cpu, ins_wal = time.monotonic() - t0, pg_cpu() - cpu0, pg.wal() - wal0
        # late delivery statuses on archived rows, by SID
        sids = [r["sid"] for r in random.Random(5).sample(rows, min(5000, n // 4))
                if r["fields"].get("twilioSid")]  # fmt: skip
        cpu0, wal0, t0 = pg_cpu(), pg.wal(), time.monotonic()
        pg.update_delivery(sids, 100)
        upd_s, upd_cpu, upd_wal = time.monotonic() - t0, pg_cpu() - cpu0, pg.wal() - wal0
        print_table(
            "Writing finished records",
            ["store", "how", "rows", "rows/s", "server CPU-us/row", "WAL B/row"],
            [
                ["Redis", "pipelines of 1,000 (HSET, EXPIRE, ZADD x3-5, SET); client-bound", n,
                 r_load["rows_per_s"], r_load["cpu_us_per_row"], "-"],
                ["PostgreSQL", f"COPY, {args.batch:,} rows per transaction", n, n / copy_s,
                 copy_cpu * 1e6 / n, copy_wal / n],
                ["PostgreSQL", f"multi-row INSERT, {args.batch // 10} rows per statement",
                 len(extra), len(extra) / ins_s, ins_cpu * 1e6 / len(extra),
                 ins_wal / len(extra)],
                ["PostgreSQL, record zlib", f"COPY, {args.batch:,} rows per transaction", n,
                 n / lz4_s, lz4_cpu * 1e6 / n, lz4_wal / n],
                ["PostgreSQL", "UPDATE by Twilio SID (a late delivery status), 100 per "
                 "transaction", len(sids), len(sids) / upd_s, upd_cpu * 1e6 / len(sids),
                 upd_wal / len(sids)],
            ],
        )  # fmt: skip
        rows_bytes = [["Redis: used_memory (RAM)", r_load["bytes_per_record"], "-"]]
        rows_bytes += [["PostgreSQL: table (heap)", heap / n, lz4_heap / n],
                       ["PostgreSQL: TOAST", toast / n, lz4_toast / n]]  # fmt: skip
        rows_bytes += [[f"PostgreSQL: index {k}", v / n, lz4_indexes[k] / n]
                       for k, v in indexes.items()]  # fmt: skip
        rows_bytes.append(["PostgreSQL: all (disk)", (heap + toast + sum(indexes.values())) / n,
                           (lz4_heap + lz4_toast + sum(lz4_indexes.values())) / n])  # fmt: skip
        print_table(f"Bytes per finished record ({n:,} records, before the INSERT sample)",
                    ["where", "bytes/record", "record zlib by the writer"], rows_bytes)  # fmt: skip

        # -- searches
        q = searches(rows, gen.tenants)
        search = Search(server.conn, cipher)  # type: ignore[arg-type]
        which = [pg]  # the database pg_q asks
        s = "{s}"  # pg_q puts the database's schema here
        rng = random.Random(3)
        cols = "job_id, status, created_at, updated_at, campaign_id, twilio_sid, error_code, record"

        def pg_q(sql: str, params: tuple[Any, ...]) -> list[Any]:
            db = which[0]
            return db.conn.execute(sql.replace("{s}", db.schema), params).fetchall()

        def second_page(tenant: str, campaign: str) -> list[Any]:
            first = pg_q(f"SELECT created_at FROM {s}.jobs WHERE tenant = %s AND campaign_id = %s "
                         "ORDER BY created_at DESC LIMIT 50",
                         (tenant, uuid.UUID(campaign)))  # fmt: skip
            cursor = first[-1][0] if first else datetime.now(UTC)
            return pg_q(f"SELECT {cols} FROM {s}.jobs WHERE tenant = %s AND campaign_id = %s AND "
                        "created_at < %s ORDER BY created_at DESC LIMIT 50",
                        (tenant, uuid.UUID(campaign), cursor))  # fmt: skip

        def redis_second_page(tenant: str, campaign: str) -> list[Any]:
            first = search.jobs(tenant, JobQuery(campaign_id=campaign))
            return list(search.jobs(tenant, JobQuery(campaign_id=campaign),
                                    cursor=first["nextCursor"])["jobs"])  # fmt: skip

        def digest(to: str) -> bytes:
            return hmac.new(digest_key, to.encode(), hashlib.sha256).digest()[:16]

        FAILED = JobQuery(status=JobStatus.failed)  # noqa: N806
        cases: list[tuple[str, Callable[[], list[Any]], Callable[[], list[Any]]]] = [
            ("a tenant's latest 50",
             lambda: search.jobs(rng.choice(q["tenant"]), JobQuery())["jobs"],
             lambda: pg_q(f"SELECT {cols} FROM {s}.jobs WHERE tenant = %s "
                          "ORDER BY created_at DESC LIMIT 50", (rng.choice(q["tenant"]),))),
            ("failed, latest 50",
             lambda: search.jobs(rng.choice(q["tenant"]), FAILED)["jobs"],
             lambda: pg_q(f"SELECT {cols} FROM {s}.jobs WHERE tenant = %s AND status = 'failed' "
                          "ORDER BY created_at DESC LIMIT 50", (rng.choice(q["tenant"]),))),
            ("by recipient",
             lambda: search.jobs(*_pair(rng, q["recipient"], "to"))["jobs"],
             lambda: pg_q(f"SELECT {cols} FROM {s}.jobs WHERE tenant = %s AND to_digest = %s "
                          "ORDER BY created_at DESC LIMIT 50",
                          _digested(rng.choice(q["recipient"]), digest))),
            ("a campaign, page 2",
             lambda: redis_second_page(*rng.choice(q["campaign"])),
             lambda: second_page(*rng.choice(q["campaign"]))),
            ("error 30003, latest 50",
             lambda: search.jobs(rng.choice(q["tenant"]), JobQuery(error_code=30003))["jobs"],
             lambda: pg_q(f"SELECT {cols} FROM {s}.jobs WHERE tenant = %s AND error_code = 30003 "
                          "ORDER BY created_at DESC LIMIT 50", (rng.choice(q["tenant"]),))),
            ("one job by id",
             lambda: [search.redis.hgetall(f"tj:job:{rng.choice(rows)['id']}")],
             lambda: pg_q(f"SELECT {cols} FROM {s}.jobs WHERE job_id = %s",
                          (uuid.UUID(rng.choice(rows)["id"]),))),
        ]  # fmt: skip
        table = []
        for name, on_redis, on_pg in cases:
            r50, r99, rn = timed(on_redis, args.queries)
            which[0] = pg
            p50, p99, pn = timed(on_pg, args.queries)
            which[0] = lz4
            l50, l99, _ = timed(on_pg, args.queries)
            table.append([name, r50, r99, rn, p50, p99, pn, l50, l99])
        print_table(
            f"Searches, {args.queries} each (ms; Redis through twilio_jobs.search, rows returned "
            "by the last call)",
            ["search", "Redis p50", "Redis p99", "rows", "PostgreSQL p50", "PostgreSQL p99",
             "rows", "PG zlib p50", "PG zlib p99"],
            table,
        )  # fmt: skip
        which[0] = pg
        plan = pg_q(
            f"EXPLAIN SELECT {cols} FROM {s}.jobs WHERE tenant = %s AND status = 'failed' "
            "ORDER BY created_at DESC LIMIT 50", (q["tenant"][0],))  # fmt: skip
        print("\nplan of 'failed, latest 50':")
        for (line,) in plan[:8]:
            print("  " + line)
    finally:
        pg.drop()
        lz4.drop()
        server.stop()
    return 0


def _pair(rng: random.Random, pairs: list[tuple[str, str]], field: str) -> tuple[str, Any]:
    from twilio_jobs.search import JobQuery

    tenant, value = rng.choice(pairs)
    return tenant, JobQuery(**{field: value})


def _digested(pair: tuple[str, str], digest: Callable[[str], bytes]) -> tuple[str, bytes]:
    return pair[0], digest(pair[1])


if __name__ == "__main__":
    raise SystemExit(main())
