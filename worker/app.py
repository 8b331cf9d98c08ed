"""The Celery app. All its settings are in celeryconfig.py."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown

from worker.twilio_gateway import quiet_twilio_logging

app = Celery("twilio_jobs")
app.config_from_object("celeryconfig")

log = logging.getLogger("twilio_jobs.worker")


@worker_ready.connect
def _start_scheduler(sender: Any = None, **_: Any) -> None:
    from worker.runtime import runtime, start_scheduler

    quiet_twilio_logging()
    runtime()  # built before the first task, not by the first few at once
    start_scheduler()


@worker_shutdown.connect
def _stop_scheduler(sender: Any = None, **_: Any) -> None:
    from worker.runtime import stop_scheduler

    stop_scheduler()


@task_prerun.connect
def _task_started(sender: Any = None, **_: Any) -> None:
    from worker.runtime import watch

    for w in watch:
        w.task_started()


@task_postrun.connect
def _task_finished(sender: Any = None, **_: Any) -> None:
    from worker.runtime import watch

    for w in watch:
        w.task_finished()
