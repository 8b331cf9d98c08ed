"""twilio-jobs core: the job lifecycle, the job store, and the public Python API.

    from twilio_jobs import Client, HttpClient, verify_webhook, JobRecord

`Client` talks to Redis; `HttpClient` (and `AsyncHttpClient`) to the HTTP API, for web apps
that should hold neither Redis access nor the secret key. All three answer with the same typed
records (`Accepted`, `JobRecord`, `CampaignAccepted`, `CampaignStatus`, `CampaignJobs`,
`FailedDelivery`, `SuppressionPage`), which dump to the JSON the HTTP API answers with.

Imports neither `producer` nor `worker`, nor Celery, FastAPI or twilio (import-linter checks it).

The names above are imported on first use (PEP 562), not with the package: every module of
the package imports this file first, and a process that needs only one light module (the
`twilio-jobs worker` supervisor needs `twilio_jobs.logs`) should not pay for Redis, pydantic
and httpx. tests/unit/test_cli_imports.py checks it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each name of __all__ and the module it lives in (tests/unit/test_cli_imports.py: the same).
_EXPORTS = {
    "Accepted": "twilio_jobs.schemas",
    "AsyncHttpClient": "twilio_jobs.http_client",
    "CampaignAccepted": "twilio_jobs.schemas",
    "CampaignJobs": "twilio_jobs.schemas",
    "CampaignStatus": "twilio_jobs.schemas",
    "Client": "twilio_jobs.client",
    "FailedDelivery": "twilio_jobs.schemas",
    "HttpClient": "twilio_jobs.http_client",
    "JobKind": "twilio_jobs.schemas",
    "JobRecord": "twilio_jobs.schemas",
    "JobStatus": "twilio_jobs.lifecycle",
    "Suppression": "twilio_jobs.schemas",
    "SuppressionPage": "twilio_jobs.schemas",
    "verify_webhook": "twilio_jobs.signing",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # Not a public name: `from twilio_jobs import keys` then imports the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
