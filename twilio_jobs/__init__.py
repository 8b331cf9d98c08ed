"""twilio-jobs core: the job lifecycle, the job store, and the public Python API.

    from twilio_jobs import Client, HttpClient, verify_webhook, JobRecord

`Client` talks to Redis; `HttpClient` (and `AsyncHttpClient`) to the HTTP API, for web apps
that should hold neither Redis access nor the secret key.

Imports neither `producer` nor `worker`, nor Celery, FastAPI or twilio (import-linter checks it).
"""

from twilio_jobs.client import Client
from twilio_jobs.http_client import AsyncHttpClient, HttpClient
from twilio_jobs.schemas import JobRecord
from twilio_jobs.signing import verify_webhook

__all__ = ["AsyncHttpClient", "Client", "HttpClient", "JobRecord", "verify_webhook"]
