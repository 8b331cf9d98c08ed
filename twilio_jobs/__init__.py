"""twilio-jobs core: the job lifecycle, the job store, and the public Python API.

    from twilio_jobs import Client, HttpClient, verify_webhook, JobRecord

`Client` talks to Redis; `HttpClient` (and `AsyncHttpClient`) to the HTTP API, for web apps
that should hold neither Redis access nor the secret key. All three answer with the same typed
records (`Accepted`, `JobRecord`, `CampaignAccepted`, `CampaignStatus`, `CampaignJobs`,
`FailedDelivery`, `SuppressionPage`), which dump to the JSON the HTTP API answers with.

Imports neither `producer` nor `worker`, nor Celery, FastAPI or twilio (import-linter checks it).
"""

from twilio_jobs.client import Client
from twilio_jobs.http_client import AsyncHttpClient, HttpClient
from twilio_jobs.lifecycle import JobStatus
from twilio_jobs.schemas import (
    Accepted,
    CampaignAccepted,
    CampaignJobs,
    CampaignStatus,
    FailedDelivery,
    JobKind,
    JobRecord,
    Suppression,
    SuppressionPage,
)
from twilio_jobs.signing import verify_webhook

__all__ = [
    "Accepted",
    "AsyncHttpClient",
    "CampaignAccepted",
    "CampaignJobs",
    "CampaignStatus",
    "Client",
    "FailedDelivery",
    "HttpClient",
    "JobKind",
    "JobRecord",
    "JobStatus",
    "Suppression",
    "SuppressionPage",
    "verify_webhook",
]
