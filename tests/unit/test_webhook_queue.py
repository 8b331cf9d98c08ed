"""A worker started without -Q (`twilio-jobs worker`, docker-compose) delivers webhooks too."""

from __future__ import annotations

from celeryconfig import celery_config
from twilio_jobs.settings import Settings


def test_default_worker_queues_include_webhooks_each_with_its_own_binding() -> None:
    config = celery_config(Settings(_env_file=None))  # type: ignore[call-arg]
    bindings = {q.name: (q.exchange.name, q.routing_key) for q in config["task_queues"]}
    assert bindings == {
        "twilio_jobs": ("twilio_jobs", "twilio_jobs"),
        "twilio_jobs.webhooks": ("twilio_jobs.webhooks", "twilio_jobs.webhooks"),
    }
    assert config["task_routes"]["twilio_jobs.webhook"] == {"queue": "twilio_jobs.webhooks"}
