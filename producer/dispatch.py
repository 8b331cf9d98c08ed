"""Hands job ids to the Celery broker by task name, so the producer needs no worker code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from celery import Celery

from producer.settings import Settings

SEND_TASK = "twilio_jobs.send"
WEBHOOK_TASK = "twilio_jobs.webhook"
SEND_BATCH_TASK = "twilio_jobs.send_batch"


def celery_app(settings: Settings) -> Celery:
    """A Celery app with celeryconfig's settings, pointed at this settings object's broker."""
    app = Celery("twilio_jobs", set_as_current=False)
    app.config_from_object("celeryconfig")
    app.conf.broker_url = settings.broker
    return app


class Dispatcher:
    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.app = app or celery_app(settings)
        self.queue = settings.queue
        self.webhook_queue = f"{settings.queue}.webhooks"

    def send(self, job_ids: Iterable[str]) -> None:
        with self.app.producer_or_acquire() as producer:
            for job_id in job_ids:
                self.app.send_task(SEND_TASK, args=[job_id], queue=self.queue, producer=producer)

    def send_webhooks(self, delivery_ids: Iterable[str]) -> None:
        with self.app.producer_or_acquire() as producer:
            for delivery_id in delivery_ids:
                self.app.send_task(
                    WEBHOOK_TASK, args=[delivery_id], queue=self.webhook_queue, producer=producer
                )

    def send_batches(self, job_ids: Sequence[str], size: int) -> None:
        """Campaign traffic: chunks of ids, each sent concurrently by one worker."""
        with self.app.producer_or_acquire() as producer:
            for start in range(0, len(job_ids), size):
                chunk = list(job_ids[start : start + size])
                self.app.send_task(
                    SEND_BATCH_TASK, args=[chunk], queue=self.queue, producer=producer
                )

    def close(self) -> None:
        self.app.close()
