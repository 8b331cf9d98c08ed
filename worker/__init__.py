"""The Celery worker: `celery -A worker worker`."""

from worker.app import app
from worker.tasks import send, send_batch, webhook

__all__ = ["app", "send", "send_batch", "webhook"]
