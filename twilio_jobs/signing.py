"""Result webhook signatures: what the worker puts on each POST and what a receiver checks.

Deliveries follow the Standard Webhooks spec (https://www.standardwebhooks.com)::

    webhook-id: <delivery id>             the same on every attempt of one delivery
    webhook-timestamp: <unix seconds>     when this attempt was signed
    webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<raw body>">

During a secret rotation (`TWILIO_JOBS_WEBHOOK_SECRET_PREVIOUS` set) `webhook-signature` holds
two signatures, space-separated, the current secret's first; either verifies. Signing the id
binds it to the body, so a captured delivery cannot be replayed under another id past a
receiver's dedupe, and the timestamp bounds how long it can be replayed at all.

The key: a secret in the spec's form, `whsec_<base64>`, is the base64-decoded bytes (what the
`standardwebhooks` package and the spec's other libraries take as they are). Any other value of
`TWILIO_JOBS_WEBHOOK_SECRET` (this project's earlier secrets) is used as its UTF-8 bytes; with
the `standardwebhooks` package, pass those bytes: `Webhook(secret.encode())`.

The earlier header stays for receivers that check it (deprecated; it does not sign the id)::

    X-Twilio-Jobs-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">[,v1=...]

A receiver verifies with the raw bytes it received (not re-serialised JSON)::

    from twilio_jobs import verify_webhook
    if not verify_webhook(body, request.headers, secret):
        return 400
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

EVENT_HEADER = "X-Twilio-Jobs-Event"
JOB_ID_HEADER = "X-Twilio-Jobs-Job-Id"
DELIVERY_HEADER = "X-Twilio-Jobs-Delivery"
SIGNATURE_HEADER = "X-Twilio-Jobs-Signature"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE = 300
SECRET_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a webhook secret: `whsec_<base64>` decoded, else the text's bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :] + "==", validate=False)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ webhook secret must be base64") from None
        if key:
            return key
        raise ValueError("a whsec_ webhook secret may not be empty")
    return secret.encode()


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(signing_key(secret), signed, hashlib.sha256).hexdigest()


def _standard(msg_id: str, body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_webhook(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `X-Twilio-Jobs-Signature` value for `body`, stamped now unless `timestamp` is given."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={_mac(body, secret, stamp)}"


def webhook_headers(
    msg_id: str, body: bytes, secrets: Sequence[str], timestamp: int | None = None
) -> dict[str, str]:
    """The signature headers of one attempt: Standard Webhooks' three and the earlier one,
    each signed with every secret given (the current one first)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(stamp)}
    if secrets:
        headers[STANDARD_SIGNATURE_HEADER] = " ".join(
            _standard(msg_id, body, s, stamp) for s in secrets
        )
        headers[SIGNATURE_HEADER] = f"t={stamp}," + ",".join(
            f"v1={_mac(body, s, stamp)}" for s in secrets
        )
    return headers


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str] | str | None,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """True if the delivery is signed with `secret` and its timestamp is within `tolerance`
    seconds of now (either way), which bounds how long a captured request can be replayed.

    `headers` is the request's headers (any mapping; names are matched case-insensitively):
    the Standard Webhooks headers are checked. A string is taken as an earlier
    `X-Twilio-Jobs-Signature` value. Several signatures are accepted, any one of which may
    match (a secret rotation)."""
    if not headers or not secret:
        return False
    raw = body.encode() if isinstance(body, str) else body
    current = time.time() if now is None else now
    try:
        if isinstance(headers, str):
            return _verify_legacy(raw, headers, secret, tolerance, current)
        return _verify_standard(raw, headers, secret, tolerance, current)
    except ValueError:
        return False


def _verify_standard(
    raw: bytes, headers: Mapping[str, str], secret: str, tolerance: int, now: float
) -> bool:
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get(ID_HEADER)
    stamp = lowered.get(TIMESTAMP_HEADER, "")
    signatures = lowered.get(STANDARD_SIGNATURE_HEADER)
    if not msg_id or not stamp.isdigit() or not signatures:
        return False
    if abs(now - int(stamp)) > tolerance:
        return False
    expected = _standard(msg_id, raw, secret, int(stamp))
    return any(
        hmac.compare_digest(expected.encode(), candidate.encode())
        for candidate in signatures.split(" ")
        if candidate.startswith("v1,")
    )


def _verify_legacy(raw: bytes, header: str, secret: str, tolerance: int, now: float) -> bool:
    stamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            stamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if stamp is None or not candidates or abs(now - stamp) > tolerance:
        return False
    expected = _mac(raw, secret, stamp)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


__all__ = ["sign_webhook", "signing_key", "verify_webhook", "webhook_headers"]
