"""A worker started without -Q (`twilio-jobs worker`, docker-compose) delivers webhooks too."""

from __future__ import annotations

import celeryconfig


def test_default_worker_queues_include_webhooks_each_with_its_own_binding() -> None:
    bindings = {q.name: (q.exchange.name, q.routing_key) for q in celeryconfig.task_queues}
    assert bindings == {
        "twilio_jobs": ("twilio_jobs", "twilio_jobs"),
        "twilio_jobs.webhooks": ("twilio_jobs.webhooks", "twilio_jobs.webhooks"),
    }
    assert celeryconfig.task_routes["twilio_jobs.webhook"] == {"queue": "twilio_jobs.webhooks"}
