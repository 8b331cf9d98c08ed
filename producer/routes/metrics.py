"""`GET /metrics`: Prometheus's text format, read from Redis at scrape time
(`twilio_jobs.stats`), so every API process answers with the same, current numbers. The
workers' own counters (sends, Twilio latency, pacing waits...) are on each worker process's
`TWILIO_JOBS_METRICS_PORT` (`worker.metrics`). Public like the health routes: aggregate
numbers only, never a job id or a phone number."""

from __future__ import annotations

from collections.abc import Iterator

import redis
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from twilio_jobs import stats
from twilio_jobs.client import Client

router = APIRouter()


class StoreCollector(Collector):
    def __init__(self, client: Client) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("twilio_jobs_store_up", "1 when Redis answered this scrape.")
        try:
            snap = stats.read(self.client.redis, self.client.dispatcher, self.client.settings)
        except (redis.RedisError, OSError, ConnectionError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily(
            "twilio_jobs_jobs", "Jobs in each state that is not final, now.", labels=["status"]
        )
        for status, n in snap.jobs.items():
            jobs.add_metric([status], n)
        yield jobs
        ended = CounterMetricFamily(
            "twilio_jobs_jobs_ended", "Jobs that reached each final state.", labels=["status"]
        )
        for status, n in snap.ended.items():
            ended.add_metric([status], n)
        yield ended
        queues = GaugeMetricFamily(
            "twilio_jobs_queue_messages", "Task messages waiting in the broker.", labels=["queue"]
        )
        for queue, n in snap.queues.items():
            queues.add_metric([queue], n)
        yield queues
        if snap.oldest_queued_age is not None:
            yield GaugeMetricFamily(
                "twilio_jobs_oldest_queued_job_age_seconds",
                "Since the job of the oldest task message in the send queue was queued.",
                value=snap.oldest_queued_age,
            )
        yield GaugeMetricFamily(
            "twilio_jobs_schedule_entries",
            "Jobs waiting in the schedule (sendAt, backoff, pacing, watchdog entries).",
            value=snap.schedule,
        )
        yield GaugeMetricFamily(
            "twilio_jobs_schedule_overdue_entries",
            "Schedule entries more than a second past due (the scheduler is behind).",
            value=snap.schedule_overdue,
        )
        yield GaugeMetricFamily(
            "twilio_jobs_webhook_deliveries_failed",
            "Result webhooks that gave up and wait for a replay.",
            value=snap.webhooks_failed,
        )
        limit = GaugeMetricFamily(
            "twilio_jobs_account_in_flight_limit",
            "Requests an account may have in flight, as AIMD has it after 429s.",
            labels=["account"],
        )
        in_flight = GaugeMetricFamily(
            "twilio_jobs_account_in_flight", "Requests in flight per account.", labels=["account"]
        )
        for account, state in snap.in_flight.items():
            limit.add_metric([account], state["inFlightLimit"])
            in_flight.add_metric([account], state["inFlight"])
        yield limit
        yield in_flight
        yield GaugeMetricFamily(
            "twilio_jobs_campaigns_running",
            "Campaigns with jobs that have not ended yet.",
            value=snap.campaigns_running,
        )
        yield GaugeMetricFamily(
            "twilio_jobs_workers_alive",
            "Worker processes whose heartbeat is fresher than TWILIO_JOBS_WORKER_DEAD_AFTER.",
            value=snap.workers_alive,
        )
        yield CounterMetricFamily(
            "twilio_jobs_worker_restarts",
            "Celery workers restarted by the `twilio-jobs worker` supervisor.",
            value=snap.worker_restarts,
        )


def registry(client: Client) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(client))
    return reg


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    reg = getattr(request.app.state, "metrics_registry", None)
    if reg is None:
        reg = request.app.state.metrics_registry = registry(request.app.state.client)
    body = await run_in_threadpool(generate_latest, reg)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
