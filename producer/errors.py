"""Errors of the producer side, each with the HTTP status the API answers with.

    TwilioJobsError
     ├── InvalidRequest        400  invalid on its face; no job is created
     ├── Unauthorized          401  missing or unknown API key
     ├── Forbidden             403  a Twilio status callback with a bad token or signature, an
     │                              account the tenant has not proven it holds
     ├── JobNotFound           404  unknown job id (or another key's job)
     ├── Conflict              409  idempotency key reused, job in the wrong state
     ├── PayloadTooLarge       413
     └── ServiceUnavailable    503  Redis or the broker cannot be reached

The worker's send errors (permanent / retryable / ambiguous) live in `worker.errors`
and derive from the same root.
"""

from __future__ import annotations


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


class Conflict(TwilioJobsError):
    http_status = 409


class PayloadTooLarge(TwilioJobsError):
    http_status = 413


class ServiceUnavailable(TwilioJobsError):
    http_status = 503


CREDENTIALS_REQUIRED = "Credentials are required to create a Client"

WORKER_STALLED_EXIT = 75
"""Exit code of a worker that found itself stalled; `twilio-jobs worker` starts it again."""


def twilio_style(message: str, status: int = 400) -> str:
    """The text twilio-python gives a failed create, for errors we can see before sending."""
    return f"[HTTP {status}] Unable to create record: {message}"
