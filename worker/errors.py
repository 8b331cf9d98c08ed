"""The send and webhook errors, now in the one error tree (`twilio_jobs.errors`)."""

from twilio_jobs.errors import (
    AmbiguousError,
    PermanentError,
    RetryableError,
    SendError,
    TwilioJobsError,
    WebhookError,
    WebhookRefused,
)

__all__ = [
    "AmbiguousError",
    "PermanentError",
    "RetryableError",
    "SendError",
    "TwilioJobsError",
    "WebhookError",
    "WebhookRefused",
]
