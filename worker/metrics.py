"""The worker process's own metrics (prometheus_client's default registry), served on
`TWILIO_JOBS_METRICS_PORT` when it is set. Labels are bounded: kinds, outcome classes, a fixed
list of Twilio error codes (anything else is `other`), never a job id or a phone number.

What the store knows (jobs per state, queue depth and age...) is on the API's `GET /metrics`.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

from twilio_jobs.errors import AmbiguousError, PermanentError, RetryableError, SendError

log = logging.getLogger("twilio_jobs.metrics")

# The Twilio error codes worth a series of their own; any other is counted as `other`.
KNOWN_CODES = frozenset(
    {20003, 20404, 20429, 20500, 20503, 21211, 21212, 21408, 21602, 21603, 21604, 21606,
     21610, 21612, 21614, 21617, 30003, 30005, 30006, 30007, 30008, 60200, 60203, 60410}
)  # fmt: skip
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 20.0)
WAIT_BUCKETS = (0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUEUE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

SENDS = Counter(
    "twilio_jobs_sends",
    "Twilio creates by kind and outcome class (succeeded, permanent, retryable, throttled, "
    "ambiguous).",
    ["kind", "outcome"],
)
TWILIO_ERRORS = Counter(
    "twilio_jobs_twilio_errors", "Twilio error codes answered to creates.", ["code"]
)
TWILIO_SECONDS = Histogram(
    "twilio_jobs_twilio_request_seconds",
    "Time from sending a request to Twilio to its whole answer.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_TO_SEND = Histogram(
    "twilio_jobs_queue_to_send_seconds",
    "From a job's acceptance to its first Twilio request (jobs sent at once, first attempts).",
    ["kind"],
    buckets=QUEUE_BUCKETS,
)
PACING_WAIT = Histogram(
    "twilio_jobs_pacing_wait_seconds",
    "Time a send waited for a pacing slot (in-flight, rate, hold), per send path.",
    ["path"],
    buckets=WAIT_BUCKETS,
)
RECONCILIATIONS = Counter(
    "twilio_jobs_reconciliations",
    "Looks for what an unanswered create made: adopted, none (sent again) or unknown.",
    ["result"],
)
BULK_JOBS = Counter(
    "twilio_jobs_bulk_consumer_jobs",
    "Send task messages the bulk consumer ran, by task (send, send_batch) and what became "
    "of them (done, requeued: an unexpected error put the job back on the schedule).",
    ["task", "result"],
)
WEBHOOKS = Counter(
    "twilio_jobs_webhook_deliveries",
    "Result webhook delivery attempts by result (delivered, retrying, failed).",
    ["result"],
)


def outcome_of(outcome: object) -> str:
    if not isinstance(outcome, SendError):
        return "succeeded"
    if isinstance(outcome, PermanentError):
        return "permanent"
    if isinstance(outcome, RetryableError):
        return "throttled" if outcome.status == 429 or outcome.code == 20429 else "retryable"
    if isinstance(outcome, AmbiguousError):
        return "ambiguous"
    return "other"


def record_send(kind: str, outcome: object) -> None:
    SENDS.labels(kind, outcome_of(outcome)).inc()
    if isinstance(outcome, SendError) and outcome.code is not None:
        TWILIO_ERRORS.labels(str(outcome.code) if outcome.code in KNOWN_CODES else "other").inc()


def serve(port: int | None) -> None:
    """Serve this process's metrics (the worker's start-up calls it once)."""
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as exc:  # a second process on the same host and port
        log.warning("metrics port %s: %s; this process's metrics are not served", port, exc)
        return
    log.info("metrics on :%s/metrics", port)


__all__ = [
    "PACING_WAIT",
    "QUEUE_TO_SEND",
    "RECONCILIATIONS",
    "SENDS",
    "TWILIO_SECONDS",
    "WEBHOOKS",
    "record_send",
    "serve",
]
