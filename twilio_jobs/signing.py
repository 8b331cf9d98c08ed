"""Result webhook signatures: what the worker puts on each POST and what a receiver checks.

    X-Twilio-Jobs-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">

A receiver verifies with the raw bytes it received (not re-serialised JSON)::

    from twilio_jobs import verify_webhook
    if not verify_webhook(body, headers["X-Twilio-Jobs-Signature"], secret):
        return 400
"""

from __future__ import annotations

import hashlib
import hmac
import time

EVENT_HEADER = "X-Twilio-Jobs-Event"
JOB_ID_HEADER = "X-Twilio-Jobs-Job-Id"
DELIVERY_HEADER = "X-Twilio-Jobs-Delivery"
SIGNATURE_HEADER = "X-Twilio-Jobs-Signature"
DEFAULT_TOLERANCE = 300


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_webhook(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The signature header value for `body`, stamped now unless `timestamp` is given."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={_mac(body, secret, stamp)}"


def verify_webhook(
    body: bytes | str,
    header: str | None,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """True if `header` signs `body` with `secret` and its timestamp is within `tolerance`
    seconds of now (either way), which bounds how long a captured request can be replayed.
    Several `v1=` entries are accepted, any one of which may match."""
    if not header or not secret:
        return False
    raw = body.encode() if isinstance(body, str) else body
    stamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            stamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if stamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    expected = _mac(raw, secret, stamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


__all__ = ["sign_webhook", "verify_webhook"]
