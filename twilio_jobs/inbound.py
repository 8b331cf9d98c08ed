"""Inbound messages: the URL a user sets as their number's or Messaging Service's
incoming-message webhook (`POST /api/twilio/inbound`).

Twilio signs each request with the account's auth token; the API checks it with twilio-python's
`RequestValidator` (injected, `status_callbacks.SignatureCheck`) against
`TWILIO_JOBS_PUBLIC_URL` + the route (proxies rewrite the host), with the token of the
message's `AccountSid`: the server's default account, one in TWILIO_JOBS_INBOUND_ACCOUNTS, or
one registered with `POST /api/accounts/inbound` (checked at Twilio, kept encrypted).
A bad or missing signature, or an account without a token, is 403 and changes nothing.

A message that is one of Twilio's opt-out keywords (the whole message, any case, surrounding
whitespace ignored) suppresses its sender (`From`) for our number (`To`), or for the whole
Messaging Service when `MessagingServiceSid` is present (reason `keyword`); an opt-in keyword
lifts that entry; HELP and INFO are counted and marked on the event. Every message becomes an
`inbound.message` webhook event, delivered to TWILIO_JOBS_INBOUND_URL (or
TWILIO_JOBS_DEFAULT_CALLBACK_URL) through the outbox, signed like the others. The suppression
change, the count and the event are one Redis step; a message Twilio posts again (same
`MessageSid`) changes nothing.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from redis import Redis

from twilio_jobs import keys, scripts
from twilio_jobs.crypto import Cipher
from twilio_jobs.errors import Forbidden, InvalidRequest
from twilio_jobs.settings import Settings
from twilio_jobs.status_callbacks import SignatureCheck
from twilio_jobs.store import now_iso
from twilio_jobs.suppressions import ADDRESS

ROUTE = "/api/twilio/inbound"
EVENT = "inbound.message"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})
SEEN_TTL = 7 * 24 * 3600
"""How long a MessageSid is remembered, so that Twilio's retry of it changes nothing."""


def keyword_class(body: str) -> str:
    """`stop`, `start`, `help` or `other`: only a whole-message keyword counts."""
    word = body.strip().upper()
    if word in OPT_OUT:
        return "stop"
    if word in OPT_IN:
        return "start"
    if word in HELP:
        return "help"
    return "other"


class Inbound:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        signed_by_twilio: SignatureCheck,
        cipher: Cipher | None = None,
    ) -> None:
        self.redis = redis
        self.cipher = cipher
        self.settings = settings
        self.signed_by_twilio = signed_by_twilio
        settings.inbound_tokens  # noqa: B018  a malformed TWILIO_JOBS_INBOUND_ACCOUNTS fails at start
        self._apply = scripts.register(redis, "inbound")

    def public_url(self, query: str, fallback: str) -> str:
        """The URL Twilio requested (and signed), whatever proxies did to the request."""
        if not self.settings.public_url:
            return fallback
        return f"{self.settings.public_url.rstrip('/')}{ROUTE}" + (f"?{query}" if query else "")

    def token(self, account: str) -> str | None:
        """The account's auth token: from the settings, else as registered (encrypted)."""
        found = self.settings.inbound_tokens.get(account)
        if found is not None or self.cipher is None:
            return found
        stored = self.redis.get(keys.inbound_token(account))
        if not stored:
            return None
        try:
            return self.cipher.decrypt(str(stored))
        except ValueError:
            return None

    def register(self, account: str, token: str) -> None:
        """Keep a token (encrypted) for the account's inbound messages; the caller has
        checked it at Twilio (`AccountRegistry.register`)."""
        if self.cipher is None:
            raise RuntimeError("Inbound tokens need TWILIO_JOBS_SECRET_KEY")
        self.redis.set(keys.inbound_token(account), self.cipher.encrypt(token))

    def accept(self, body: bytes, signature: str | None, url: str) -> str:
        """Apply one inbound message (a form, as Twilio posts it). Returns its keyword class
        or `duplicate`; raises Forbidden, having changed nothing, unless Twilio signed it with
        the token of its account."""
        form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        params = dict(form)
        account = params.get("AccountSid", "")
        token = self.token(account) if account else None
        if token is None:
            raise Forbidden("Inbound message from an account this server has no token for")
        if not self.signed_by_twilio(url, form, token, signature):
            raise Forbidden("Invalid X-Twilio-Signature")
        sender, ours = params.get("From", ""), params.get("To", "")
        message_sid = params.get("MessageSid") or params.get("SmsSid") or ""
        service = params.get("MessagingServiceSid", "")
        for name, value in (("From", sender), ("To", ours), ("MessageSid", message_sid)):
            if not ADDRESS.fullmatch(value):
                raise InvalidRequest(f"Invalid field '{name}': missing or malformed")
        if service and not ADDRESS.fullmatch(service):
            raise InvalidRequest("Invalid field 'MessagingServiceSid': malformed")
        text = params.get("Body", "")
        kind = keyword_class(text)
        scope = service or ours
        at = now_iso()
        entry = {"reason": "keyword", "at": at, "keyword": text.strip().upper()}
        entry["messageSid"] = message_sid
        event = {
            "event": EVENT,
            "accountSid": account,
            "messageSid": message_sid,
            "from": sender,
            "to": ours,
            "messagingServiceSid": service or None,
            "body": text,
            "keyword": None if kind == "other" else kind,
            "numMedia": int(media) if (media := params.get("NumMedia", "0")).isdigit() else 0,
            "mediaUrls": [params[f"MediaUrl{i}"] for i in range(10) if params.get(f"MediaUrl{i}")],
            "receivedAt": at,
        }
        url_out = self.settings.inbound_url or self.settings.default_callback_url or ""
        ttl_ms = max(self.settings.result_ttl, keys.WEBHOOK_MIN_TTL) * 1000
        return str(
            self._apply(
                keys=[
                    keys.suppressed(account),
                    keys.inbound_seen(account, message_sid),
                    keys.inbound_counts(account),
                ],
                args=[
                    kind,
                    f"{scope} {sender}",
                    json.dumps(entry),
                    SEEN_TTL,
                    f"{message_sid}-e1",
                    message_sid,
                    url_out,
                    json.dumps(event, separators=(",", ":")),
                    ttl_ms,
                ],
            )
        )
