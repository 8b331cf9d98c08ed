"""twilio-jobs producer: the HTTP API and the CLI, over `twilio_jobs`.

`Client` and `verify_webhook` are re-exported from `twilio_jobs` for code written against
earlier versions; new code imports them from `twilio_jobs`.
"""

from twilio_jobs import Client, verify_webhook

__all__ = ["Client", "verify_webhook"]
