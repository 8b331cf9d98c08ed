"""The Celery tasks users would write themselves, as the yardsticks of bench/drain.py.

Their own tiny Celery app and queue on the same Redis as ours, with a result backend (as the
tutorials configure one). Both are deliberately *not* our code and follow what people write:

- `tutorial_send`: run on the prefork pool, concurrency 8; a new twilio `Client` (and so a new
  HTTP session and TCP connection) per task, credentials in the message.
- `standard_send`: "a standard task done right": threads pool, concurrency 50, one shared
  `Client` per process over a connection pool sized to the concurrency.
- `lean_send` (issue 15): the lean hand-written task, the strongest of the three. Threads pool,
  concurrency 50, the same shared `Client`, `ignore_result=True` (no result backend write),
  run at log level WARNING, and the message SID written to Redis with one `SET` on a shared
  connection pool (so the drain can count what finished, as it counts the others' results).
  Also run with 200 threads (`BENCH_CONCURRENCY`), as many requests in flight as our worker.

The only change from what a user would write is pointing twilio-python at the fake Twilio
(`client.api.base_url`), because there is no setting for that.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready
from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

BROKER_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
RESULT_URL = os.environ.get("BENCH_RESULT_URL", "redis://127.0.0.1:6379/14")
TWILIO_URL = os.environ.get("TWILIO_API_BASE_URL", "https://api.twilio.com")
QUEUE = "bench_reference"
# The threads and the connection pools sized to them; bench/drain.py's "lean-200" row raises
# it to the requests our worker keeps in flight.
STANDARD_CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "50"))

app = Celery("reference", broker=BROKER_URL, backend=RESULT_URL)
app.conf.task_default_queue = QUEUE
app.conf.broker_connection_retry_on_startup = True
app.conf.broker_transport_options = {"max_connections": 2 * STANDARD_CONCURRENCY}
app.conf.redis_max_connections = 2 * STANDARD_CONCURRENCY


@worker_ready.connect
def _ready(**_: Any) -> None:
    print("bench-reference-ready", flush=True)


def _client(account_sid: str, token: str, http_client: Any = None) -> Client:
    client = Client(account_sid, token, http_client=http_client)
    client.api.base_url = TWILIO_URL
    return client


@app.task(name="bench.tutorial_send")
def tutorial_send(account_sid: str, token: str, to: str, from_: str, body: str) -> str:
    client = _client(account_sid, token)
    message = client.messages.create(to=to, from_=from_, body=body)
    return str(message.sid)


_shared: Client | None = None
_lock = threading.Lock()


def _shared_client() -> Client:
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                http = TwilioHttpClient(pool_connections=True)
                adapter = HTTPAdapter(pool_maxsize=STANDARD_CONCURRENCY)
                assert http.session is not None
                http.session.mount("http://", adapter)
                http.session.mount("https://", adapter)
                _shared = _client(
                    os.environ["TWILIO_ACCOUNT_SID"],
                    os.environ["TWILIO_AUTH_TOKEN"],
                    http_client=http,
                )
    return _shared


@app.task(name="bench.standard_send")
def standard_send(to: str, from_: str, body: str) -> str:
    message = _shared_client().messages.create(to=to, from_=from_, body=body)
    return str(message.sid)


_results: redis.Redis | None = None


def _result_redis() -> redis.Redis:
    global _results
    if _results is None:
        with _lock:
            if _results is None:
                _results = redis.Redis.from_url(
                    RESULT_URL, max_connections=2 * STANDARD_CONCURRENCY
                )
    return _results


@app.task(name="bench.lean_send", ignore_result=True)
def lean_send(job_id: str, to: str, from_: str, body: str) -> None:
    message = _shared_client().messages.create(to=to, from_=from_, body=body)
    _result_redis().set(f"lean:{job_id}", str(message.sid))
