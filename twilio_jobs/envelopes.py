"""The seed's result envelopes, as `GET /api/jobs/{id}` shows them in `result` and webhooks send
them: the one builder of each, used by the API, the client, the worker and the Lua constants."""

from __future__ import annotations

from typing import Any


def success_envelope(resource: dict[str, Any]) -> dict[str, Any]:
    """`resource`: the Twilio resource exactly as Twilio returned it."""
    return {"callback": "success", "contextWrites": {"to": resource}}


def error_envelope(message: str) -> dict[str, Any]:
    return {"callback": "error", "contextWrites": {"to": message}}


__all__ = ["error_envelope", "success_envelope"]
