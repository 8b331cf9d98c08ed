"""twilio-jobs producer: the contract, the client library and the HTTP API."""

from producer.client import Client
from producer.webhooks import verify_webhook

__all__ = ["Client", "verify_webhook"]
