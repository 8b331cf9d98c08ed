"""twilio-jobs producer: the contract, the client library and the HTTP API."""

from producer.client import Client

__all__ = ["Client"]
