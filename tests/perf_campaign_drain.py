"""Quick drain check of the campaign fast path (the full benchmarks live in bench/).

    python -m tests.fake_twilio --port 8097 --latency 0.1 &
    TEST_REDIS_URL=redis://127.0.0.1:6379/12 python -m tests.perf_campaign_drain 8000 8

A campaign of N against that fake, 2 worker processes (threads, concurrency C), in-flight
limit 100, sender rate unlimited. Prints jobs/s (from accepting the campaign to its last job
final) and the workers' CPU per job. FLUSHES the Redis database it is given.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import redis

from tests.conftest import WorkerProcess, make_settings, service_env
from tests.fake_twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from twilio_jobs.client import Client

FAKE = os.environ.get("FAKE", "http://127.0.0.1:8097")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main(n: int, concurrency: int) -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()
    urllib.request.urlopen(urllib.request.Request(FAKE + "/_fake/reset", data=b"{}"))
    env = service_env(
        FAKE,
        REDIS_URL,
        TWILIO_JOBS_SENDER_RATES='{"+15005550006": 0}',
        TWILIO_JOBS_ACCOUNT_MAX_IN_FLIGHT="100",
        TWILIO_JOBS_READ_TIMEOUT="15",
    )
    workers = [
        WorkerProcess(env, Path(f"/tmp/twilio-jobs-drain-w{i}.log"), concurrency).start()
        for i in range(2)
    ]
    pids = [w.proc.pid for w in workers if w.proc is not None]
    jobs = Client(make_settings(env))
    cpu_before = sum(cpu_seconds(p) for p in pids)
    started = time.time()
    answer = jobs.create_campaign(
        account_sid=DEFAULT_ACCOUNT_SID,
        account_token=DEFAULT_AUTH_TOKEN,
        from_="+15005550006",
        body="Hi {{n}}",
        recipients=[{"to": f"+1415{7000000 + i:07d}", "n": i} for i in range(n)],
    )
    accepted = time.time()
    deadline = accepted + 600
    campaign_id = str(answer.campaignId)
    status = jobs.campaign_status(campaign_id)
    while status.state != "completed" and time.time() < deadline:
        time.sleep(0.2)
        status = jobs.campaign_status(campaign_id)
    ended = time.time()
    cpu_used = sum(cpu_seconds(p) for p in pids) - cpu_before
    stats = json.load(urllib.request.urlopen(FAKE + "/_fake/stats"))
    for worker in workers:
        worker.stop()
    jobs.close()
    print(
        f"N={n} accepted in {accepted - started:.2f}s; drained {n / (ended - started):.0f} jobs/s "
        f"({ended - started:.1f}s); workers {1000 * cpu_used / n:.2f} ms CPU/job; "
        f"created {stats['created_count']}; peak in flight {stats['peak_in_flight']}; "
        f"succeeded {status.counts['succeeded']}"
    )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 10000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 8,
    )
