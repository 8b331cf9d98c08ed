"""The one error tree. API errors carry the HTTP status the API answers with; send errors are
what a Twilio create gave other than success, classified once (`classify`).

    TwilioJobsError
     ├── InvalidRequest        400  invalid on its face; no job is created
     ├── Unauthorized          401  missing or unknown API key
     ├── Forbidden             403  a Twilio status callback with a bad token or signature, an
     │                              account the tenant has not proven it holds
     ├── JobNotFound           404  unknown job id (or another key's job)
     ├── CampaignNotFound      404  unknown campaign id (or another key's campaign)
     ├── Conflict              409  idempotency key reused, job in the wrong state
     ├── PayloadTooLarge       413
     ├── ServiceUnavailable    503  Redis or the broker cannot be reached
     ├── SendError                  a create that did not succeed; `message` is the envelope text
     │    ├── PermanentError        4xx other than 429: never retried
     │    ├── RetryableError        connection refused, 429/20429, 503: nothing was created
     │    └── AmbiguousError        read timeout, reset after sending, 500/502/504: the message
     │                              or call may exist, so reconcile before sending again
     └── WebhookError               a result webhook that could not be delivered this time
          └── WebhookRefused        its URL is not allowed (scheme, private address): not retried
"""

from __future__ import annotations

from typing import Any


class TwilioJobsError(Exception):
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(TwilioJobsError):
    http_status = 400


class Unauthorized(TwilioJobsError):
    http_status = 401


class Forbidden(TwilioJobsError):
    http_status = 403


class JobNotFound(TwilioJobsError):
    http_status = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job not found: {job_id}")


class CampaignNotFound(TwilioJobsError):
    http_status = 404

    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"Campaign not found: {campaign_id}")


class Conflict(TwilioJobsError):
    http_status = 409


class PayloadTooLarge(TwilioJobsError):
    http_status = 413


class ServiceUnavailable(TwilioJobsError):
    http_status = 503


class SendError(TwilioJobsError):
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def as_record(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }


class PermanentError(SendError):
    pass


class RetryableError(SendError):
    retryable = True


class AmbiguousError(SendError):
    retryable = True


class WebhookError(TwilioJobsError):
    pass


class WebhookRefused(WebhookError):
    pass


SAFE_TO_RETRY = frozenset({429, 503})
"""HTTP statuses after which nothing was created: send again after a backoff."""
AMBIGUOUS = frozenset({500, 502, 504})
"""HTTP statuses after which the resource may exist: reconcile before sending again."""
TOO_MANY_REQUESTS = 20429


def outcome_class(status: int, code: int | None) -> type[SendError]:
    """The one table from a Twilio answer (HTTP status, Twilio error code) to its outcome
    class, for the sync and the async transport alike."""
    if status in SAFE_TO_RETRY or code == TOO_MANY_REQUESTS:
        return RetryableError
    if status in AMBIGUOUS:
        return AmbiguousError
    if 400 <= status < 500:
        return PermanentError
    return AmbiguousError


CREDENTIALS_REQUIRED = "Credentials are required to create a Client"
REPLICAS_SHORT = "The job store could not copy the job to its replicas; try again"
"""503 under TWILIO_JOBS_STORE_MIN_REPLICAS: the job was not accepted (nothing is kept)."""

WORKER_STALLED_EXIT = 75
"""Exit code of a worker that found itself stalled; `twilio-jobs worker` starts it again."""


def twilio_style(message: str, status: int = 400) -> str:
    """The text twilio-python gives a failed create, for errors we can see before sending."""
    return f"[HTTP {status}] Unable to create record: {message}"
