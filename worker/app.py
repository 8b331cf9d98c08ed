"""The Celery app: `celery -A worker worker`. Its configuration comes from the one settings
object (`celeryconfig`), read here, at the worker's entry point; its collaborators from the
composition root (`worker.root`), built when the worker starts."""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_ready,
    worker_shutdown,
)

from celeryconfig import celery_config
from twilio_jobs import logs
from twilio_jobs.settings import Settings, get_settings
from worker.broker import transport_for
from worker.root import Root

log = logging.getLogger("twilio_jobs.worker")


class WorkerApp(Celery):  # type: ignore[misc]
    """The Celery app and the one `Root` of this process."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("twilio_jobs")
        self.settings = settings
        self.conf.update(celery_config(settings))
        self.conf.broker_transport = transport_for(self.conf.broker_url)
        self._root: Root | None = None
        self._root_lock = threading.Lock()

    @property
    def root(self) -> Root:
        if self._root is None:
            with self._root_lock:
                if self._root is None:
                    self._root = Root(self.settings)
        return self._root


app = WorkerApp(get_settings())


@setup_logging.connect
def _logging(**_: Any) -> None:
    # Connected, this signal keeps Celery from installing its own handlers: every line goes
    # through ours, in TWILIO_JOBS_LOG_FORMAT.
    logs.configure(app.settings.log_format)


@worker_init.connect
def _quiet_task_logs(sender: Any = None, **_: Any) -> None:
    # Celery logs two INFO lines per task (received, succeeded): at hundreds of jobs a second
    # that is noise and a measurable share of the CPU. Failures are still logged; each job's
    # story is in its record.
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_ready.connect
def _start(sender: Any = None, **_: Any) -> None:
    app.root.start()  # built before the first task, not by the first few at once
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise walk all of it again and again (80-100 ms a pass in the
    # API process, docs/benchmarks.md).
    gc.collect()
    gc.freeze()


@worker_shutdown.connect
def _stop(sender: Any = None, **_: Any) -> None:
    if app._root is not None:
        app._root.stop()


@task_prerun.connect
def _task_started(sender: Any = None, **_: Any) -> None:
    if app._root is not None:
        app._root.watch.task_started()


@task_postrun.connect
def _task_finished(sender: Any = None, **_: Any) -> None:
    if app._root is not None:
        app._root.watch.task_finished()
