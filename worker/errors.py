"""Send outcomes other than success (classified once, in the gateway), and webhook failures.

TwilioJobsError                (twilio_jobs.errors)
 ├── SendError                 a create that did not succeed; `message` is the envelope text
 │    ├── PermanentError       4xx other than 429: never retried
 │    ├── RetryableError       connection refused, 429/20429, 503: nothing was created
 │    └── AmbiguousError       read timeout, reset after sending, 500/502/504: the message
 │                             or call may exist, so reconcile before sending again
 └── WebhookError              a result webhook that could not be delivered this time
      └── WebhookRefused       its URL is not allowed (scheme, private address): not retried
"""

from __future__ import annotations

from typing import Any

from twilio_jobs.errors import TwilioJobsError


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
