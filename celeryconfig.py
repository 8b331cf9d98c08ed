"""All Celery settings, read from the one settings object (twilio_jobs.settings)."""

from kombu import Exchange, Queue

from twilio_jobs.settings import get_settings

_settings = get_settings()

broker_url = _settings.broker if _settings.redis_url or _settings.broker_url else "memory://"
broker_connection_retry_on_startup = True
broker_connection_max_retries = None
broker_transport_options = {
    # A task unacked this long is handed to another worker. Our tasks never wait long (no long
    # ETAs: sendAt and backoff live in the schedule set), so this only bounds how soon a job
    # held by a killed worker is picked up again; the send ledger makes the redelivery safe.
    "visibility_timeout": _settings.visibility_timeout,
    # kombu's default of 10 starves acks at high concurrency.
    "max_connections": max(20, _settings.worker_concurrency * 2),
    "socket_keepalive": True,
    "health_check_interval": 10,
}

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None
task_acks_late = True
task_reject_on_worker_lost = True
task_default_queue = _settings.queue
task_routes = {
    "twilio_jobs.send": {"queue": _settings.queue},
    "twilio_jobs.send_batch": {"queue": _settings.queue},
    "twilio_jobs.webhook": {"queue": f"{_settings.queue}.webhooks"},
}
# A worker started without -Q consumes every queue listed here (webhooks included). Each has
# its own exchange and key, as task_create_missing_queues would make them: queues sharing a
# binding would each get a copy of every message.
task_queues = tuple(
    Queue(name, Exchange(name), routing_key=name)
    for name in (_settings.queue, f"{_settings.queue}.webhooks")
)
task_create_missing_queues = True

worker_pool = "threads"
worker_concurrency = _settings.worker_concurrency
worker_prefetch_multiplier = 4
# Pacing is global, in Redis (DESIGN.md); Celery's per-worker rate limits stay off, which
# also spares the consumer a token-bucket check per message.
worker_disable_rate_limits = True
worker_hijack_root_logger = False
worker_send_task_events = False
task_send_sent_event = False
imports = ("worker.tasks",)
