"""twilio-jobs core: the job lifecycle, the job store, and the public Python API.

    from twilio_jobs import Client, verify_webhook, JobRecord

Imports neither `producer` nor `worker`, nor Celery, FastAPI or twilio (import-linter checks it).
"""

from twilio_jobs.client import Client
from twilio_jobs.schemas import JobRecord
from twilio_jobs.signing import verify_webhook

__all__ = ["Client", "JobRecord", "verify_webhook"]
