"""The Celery app: `celery -A worker worker`. Its configuration comes from the one settings
object (`celeryconfig`), read here, at the worker's entry point; its collaborators from the
composition root (`worker.root`), built when the worker starts."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
from click import Option
from redis import Redis

from celeryconfig import celery_config
from twilio_jobs import connections, logs
from twilio_jobs.dispatch import SEND_BATCH_TASK, SEND_TASK
from twilio_jobs.heartbeat import Heartbeat
from twilio_jobs.settings import Settings, get_settings
from worker.broker import tags_restorer, transport_for
from worker.consumer import BulkSends
from worker.handlers import run_job
from worker.root import Root

log = logging.getLogger("twilio_jobs.worker")


class WorkerApp(Celery):  # type: ignore[misc]
    """The Celery app, the one `Root` of this process and its heartbeat (orphan recovery,
    twilio_jobs.heartbeat), which the broker channels get as a transport option."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("twilio_jobs")
        self.settings = settings
        self.conf.update(celery_config(settings))
        self.conf.broker_transport = transport_for(self.conf.broker_url)
        self.heartbeat = Heartbeat(settings.worker_dead_after)
        if self.conf.broker_transport is not None:  # our Redis transport
            self.conf.broker_transport_options = {
                **self.conf.broker_transport_options,
                "heartbeat": self.heartbeat,
            }
        self._root: Root | None = None
        self._root_lock = threading.Lock()
        self._recovery: ThreadPoolExecutor | None = None

    @property
    def root(self) -> Root:
        if self._root is None:
            with self._root_lock:
                if self._root is None:
                    self._root = Root(self.settings, self.heartbeat.id)
        return self._root

    def start_heartbeat(self) -> None:
        redis_broker = self.conf.broker_transport is not None
        store_url, broker_url = self.settings.store_url, self.settings.broker

        def client(url: str) -> Redis:
            return connections.redis_client(
                url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
            )

        self.heartbeat.start(
            store=client(store_url),
            hand_out=self.hand_out,
            broker=client(broker_url) if redis_broker and broker_url != store_url else None,
            restore_tags=tags_restorer(self.connection_for_write) if redis_broker else None,
        )

    def hand_out(self, job_ids: Sequence[str]) -> None:
        """Jobs whose lease a dead worker held: at the head of a Redis broker's queue; on a
        broker without one, run here and now by a few threads (the queue may be long, and
        these jobs are older than anything in it). Should either fail, the schedule's
        watchdog entry hands them out at the old lease end."""
        dispatcher = self.root.dispatcher
        if dispatcher.messages is not None:
            dispatcher.send_first(job_ids)
            return
        if self._recovery is None:
            self._recovery = ThreadPoolExecutor(16, thread_name_prefix="twilio-jobs-recovery")
        for job_id in job_ids:
            self._recovery.submit(self._run_recovered, job_id)

    def _run_recovered(self, job_id: str) -> None:
        try:
            run_job(job_id, self.root.runtime)
        except Exception:
            log.exception("job %s: recovery failed; its watchdog entry remains", job_id)


app = WorkerApp(get_settings())
# `twilio-jobs worker` passes --bulk-sends (worker/consumer.py); `celery -A worker worker`
# without it keeps a Celery task per single send.
app.user_options["worker"].add(
    Option(
        ("--bulk-sends",),
        is_flag=True,
        default=False,
        help="Take single sends in bulk and run them as coroutines (Redis broker, threads pool).",
    )
)
app.steps["consumer"].add(BulkSends)


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
    app.start_heartbeat()
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
def _task_finished(sender: Any = None, args: Any = None, **_: Any) -> None:
    if app._root is not None:
        app._root.watch.task_finished()
    name = getattr(sender, "name", "")
    if args and name == SEND_TASK:
        app.heartbeat.finished([str(args[0])])
    elif args and name == SEND_BATCH_TASK:
        app.heartbeat.finished([str(x) for x in args[0]])
