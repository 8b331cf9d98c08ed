"""Metrics as an operator gets them: a real Prometheus (Debian's `prometheus` package) scrapes
the API's `GET /metrics` and a default `twilio-jobs worker`'s metrics port during traffic, and
a rate is read back with PromQL; `promtool` accepts the exposition and the alert rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import SEED_SMS, WorkerProcess, served_api, service_env, wait_until
from tests.fake_twilio import FakeTwilio
from tests.services import free_port
from twilio_jobs.client import Client
from twilio_jobs.schemas import JobKind

pytestmark = [
    pytest.mark.integration,
    # Broker-independent (and a Prometheus per run is slow): the Redis pass runs it once.
    pytest.mark.skipif(
        os.environ.get("TEST_BROKER_URL", "").startswith("amqp"), reason="runs in the Redis pass"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
JOBS = 200


def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: `python -m tests.ensure_services` installs prometheus")
    return binary


@pytest.fixture
def api(fake_twilio: FakeTwilio, redis_conn: redis.Redis) -> Iterator[tuple[str, Client]]:
    env = service_env(fake_twilio.url, TWILIO_JOBS_SENDER_RATES='{"+15005550006": 0}')
    with served_api(env) as (url, jobs):
        yield url.removeprefix("http://"), jobs


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[list[str]], str]]:
    """Start Prometheus scraping the given targets every second; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: `python -m tests.ensure_services` installs it")
    procs: list[subprocess.Popen[bytes]] = []

    def start(targets: list[str]) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{ROOT / 'deploy/prometheus/alerts.yml'}']\n"
            "scrape_configs:\n"
            "  - job_name: twilio-jobs\n"
            f"    static_configs: [{{targets: {targets!r}}}]\n"
        )
        port = free_port()
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - the process holds it
        procs.append(
            subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ok(f"{url}/-/ready"), timeout=30)
        return url

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def query(prom: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prom}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def value(prom: str, promql: str) -> float | None:
    result = query(prom, promql)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_the_api_and_a_worker_during_traffic(
    api: tuple[str, Client],
    prometheus: Callable[[list[str]], str],
    fake_twilio: FakeTwilio,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    api_target, jobs = api
    metrics_port = free_port()
    env = service_env(
        fake_twilio.url,
        TWILIO_JOBS_SENDER_RATES='{"+15005550006": 0}',
        TWILIO_JOBS_METRICS_PORT=str(metrics_port),
    )
    start_worker(env, concurrency=None)  # `twilio-jobs worker` as users run it
    worker_target = f"127.0.0.1:{metrics_port}"
    prom = prometheus([api_target, worker_target])
    wait_until(lambda: value(prom, 'sum(up{job="twilio-jobs"})') == 2, timeout=30)

    fake_twilio.set_latency(0.05)
    fake_twilio.add_fault(400, count=5, code=21211, message="Invalid 'To' Phone Number")
    stop = threading.Event()

    def traffic() -> None:
        for _ in range(JOBS):
            if stop.is_set():
                return
            jobs.submit(JobKind.sendSms, SEED_SMS)
            time.sleep(0.02)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        # A rate, read back with PromQL while the traffic runs.
        rate = wait_until(
            lambda: value(prom, 'sum(rate(twilio_jobs_sends_total{outcome="succeeded"}[5s]))'),
            timeout=60,
        )
        assert rate is not None and rate > 1.0
    finally:
        sender.join(timeout=60)
        stop.set()
    ended = 'twilio_jobs_jobs_ended_total{status="succeeded"}'
    wait_until(lambda: value(prom, ended) == JOBS - 5, timeout=60)
    assert value(prom, 'twilio_jobs_jobs_ended_total{status="failed"}') == 5
    assert value(prom, 'twilio_jobs_twilio_errors_total{code="21211"}') == 5
    assert value(prom, "twilio_jobs_workers_alive") == 1  # by heartbeat
    assert value(prom, 'sum(twilio_jobs_sends_total{outcome="permanent"})') == 5
    wait_until(lambda: value(prom, 'twilio_jobs_jobs{status="queued"}') == 0, timeout=30)
    latency = value(
        prom,
        "histogram_quantile(0.5, sum by (le) (rate(twilio_jobs_twilio_request_seconds_bucket[1m])))",
    )
    assert latency is not None and 0.04 < latency < 0.5
    assert value(prom, 'twilio_jobs_queue_messages{queue="twilio_jobs"}') == 0
    # Every query of the Grafana dashboard is valid PromQL with data behind it.
    dashboard = json.loads((ROOT / "deploy/grafana/twilio-jobs.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 12
    empty = [e for e in exprs if not query(prom, e)]
    # Series that only exist after a 429, a reconciliation or a failed webhook may be empty.
    allowed = ("in_flight_limit", "reconciliations", "webhook_deliveries_total", "throttled")
    assert all(any(a in e for a in allowed) for e in empty), empty
    worker_exposition = httpx.get(f"http://{worker_target}/metrics").text
    check = subprocess.run(
        [promtool(), "check", "metrics"], input=worker_exposition.encode(), capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # No job id or phone number among the label values.
    series = httpx.get(f"{prom}/api/v1/series", params={"match[]": '{__name__=~"twilio_jobs_.+"}'})
    labels = {v for s in series.json()["data"] for k, v in s.items() if k != "__name__"}
    assert not {v for v in labels if (v.startswith("+") and v[1:].isdigit()) or len(v) == 32}


def test_promtool_accepts_the_exposition_and_the_rules(
    api: tuple[str, Client], fake_twilio: FakeTwilio
) -> None:
    api_target, jobs = api
    jobs.submit(JobKind.sendSms, SEED_SMS)
    exposition = httpx.get(f"http://{api_target}/metrics").text
    assert 'twilio_jobs_jobs{status="queued"} 1.0' in exposition
    assert 'twilio_jobs_queue_messages{queue="twilio_jobs"} 1.0' in exposition
    assert "twilio_jobs_oldest_queued_job_age_seconds" in exposition
    check = subprocess.run(
        [promtool(), "check", "metrics"], input=exposition.encode(), capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # A campaign runs until its last job ends (here: cancelled).
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    held = {**SEED_SMS, "recipients": [{"to": "+14155550101"}], "sendAt": later}
    campaign = jobs.create_campaign(**held).campaignId
    assert campaign is not None
    running = "twilio_jobs_campaigns_running "
    assert f"{running}1.0" in httpx.get(f"http://{api_target}/metrics").text
    jobs.cancel_campaign(campaign)
    assert f"{running}0.0" in httpx.get(f"http://{api_target}/metrics").text
    rules = subprocess.run(
        [promtool(), "check", "rules", str(ROOT / "deploy/prometheus/alerts.yml")],
        capture_output=True,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
