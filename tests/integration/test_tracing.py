"""One trace per job, from the HTTP request through the queue (the context rides on the job
record) to the Twilio call and the webhook delivery, read from the SDK's in-memory exporter.
The worker's handlers run in this process (as its Celery tasks would call them) so that one
exporter sees every span."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from producer.api import create_app
from tests.conftest import SEED_SMS, make_settings, service_env
from tests.fake_twilio import FakeTwilio
from twilio_jobs import keys, tracing
from twilio_jobs.client import Client
from worker.handlers import run_job
from worker.root import Root
from worker.webhooks import deliver

pytestmark = pytest.mark.integration


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.enable(provider)
    yield memory
    tracing.disable()


@pytest.fixture
def hook_url() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_one_trace_from_the_request_to_twilio_and_the_webhook(
    exporter: InMemorySpanExporter,
    fake_twilio: FakeTwilio,
    redis_conn: redis.Redis,
    hook_url: str,
) -> None:
    env = service_env(fake_twilio.url, TWILIO_JOBS_WEBHOOK_ALLOW_PRIVATE="true")
    settings = make_settings(env)
    jobs = Client(settings)
    root = Root(settings)
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with TestClient(create_app(settings, jobs)) as api:
        answer = api.post(
            "/api/twilio/sendSms",
            json={**SEED_SMS, "callbackUrl": hook_url},
            headers={"traceparent": caller},
        )
    job_id = answer.json()["jobId"]
    assert redis_conn.hget(keys.job(job_id), "trace")  # the context rides on the record
    assert run_job(job_id, root.runtime) == "succeeded"
    (delivery,) = [str(m) for m in redis_conn.zrange(keys.WEBHOOK_SCHEDULE, 0, -1)]
    assert deliver(delivery, root.webhooks) == "delivered"
    root.stop()
    jobs.close()

    finished = exporter.get_finished_spans()
    spans = {s.name: s for s in finished}
    by_id = {s.context.span_id: s for s in finished}

    def descends(span: Any, ancestor: Any) -> bool:
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            if span is ancestor:
                return True
        return False

    request = spans["POST /api/twilio/sendSms"]
    send, create, webhook = (
        spans["twilio_jobs.send"], spans["twilio sendSms"], spans["twilio_jobs.webhook"]
    )  # fmt: skip
    # One trace, the caller's: request -> send (consumer) -> Twilio create (client); webhook.
    assert {s.context.trace_id for s in (request, send, create, webhook)} == {
        int("0af7651916cd43dd8448eb211c80319c", 16)
    }
    assert request.kind is SpanKind.SERVER and request.parent.span_id == int("b7ad6b7169203331", 16)
    # (FastAPI may add spans of its own under the request's.)
    assert send.kind is SpanKind.CONSUMER and descends(send, request)
    assert create.kind is SpanKind.CLIENT and create.parent.span_id == send.context.span_id
    assert descends(webhook, request)
    assert create.attributes["url.full"].endswith("/Messages.json")
    assert send.attributes["twilio_jobs.job_id"] == job_id
    assert all("token" not in str(s.attributes).lower() for s in spans.values())
