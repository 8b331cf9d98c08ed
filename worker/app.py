"""The Celery app. All its settings are in celeryconfig.py."""

from __future__ import annotations

import gc
import logging
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_ready, worker_shutdown

from worker.broker import transport_for
from worker.twilio_gateway import quiet_twilio_logging

app = Celery("twilio_jobs")
app.config_from_object("celeryconfig")
app.conf.broker_transport = transport_for(app.conf.broker_url)

log = logging.getLogger("twilio_jobs.worker")


@worker_init.connect
def _quiet_task_logs(sender: Any = None, **_: Any) -> None:
    # Celery logs two INFO lines per task (received, succeeded): at hundreds of jobs a second
    # that is noise and a measurable share of the CPU. Failures are still logged; each job's
    # story is in its record.
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_ready.connect
def _start_scheduler(sender: Any = None, **_: Any) -> None:
    from worker.runtime import runtime, start_scheduler

    quiet_twilio_logging()
    runtime()  # built before the first task, not by the first few at once
    start_scheduler()
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise walk all of it again and again (80-100 ms a pass in the
    # API process, docs/benchmarks.md).
    gc.collect()
    gc.freeze()


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
