"""After an ambiguous create (read timeout, reset, 500/502/504): find what it made at Twilio.

A message Twilio has accepted but not yet handed to the carrier (`accepted`, `queued`,
`scheduled`) has a null `date_sent`, and Twilio's `DateSent` list filters apply to that sent
date (shared/TWILIO.md): a sent-date filter would never see it, and the job would send it a
second time. So the list is asked by `To` (and `From` when the job has one) with no date
filter, newest first, and each resource is matched on `date_created` (not before the send,
less some clock skew) and on what the job sent. Paging stops at the first resource older than
the send; a recipient with more than `MAX_PAGES` pages of newer traffic leaves the outcome
unknown rather than guessed.

A Verify verification is found differently (`Endpoint.find_by == "fetch"`): a recipient has
at most one pending verification per service, fetched by its `To`; it is ours when it is
pending on the same channel and was created or sent again since the send.

The pure parts live here, so every transport walks pages the same way (`twilio_jobs.twilio.api`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from twilio_jobs.schemas import JobKind

CLOCK_SKEW = 5.0
"""Seconds Twilio's clock may be behind ours; `date_created` has whole seconds."""
PAGE_SIZE = 100
MAX_PAGES = 10
TRIAL_PREFIX = "Sent from your Twilio trial account - "
# Twilio may rewrite the body of such a send, so the body cannot be compared.
BODY_REWRITES = ("SmartEncoded", "ShortenUrls")

Taken = Callable[[str], bool]


def list_query(kind: JobKind, params: Mapping[str, Any]) -> dict[str, Any]:
    """The list filters: the recipient and, when the job names one, the sender. Never a date."""
    query: dict[str, Any] = {"To": params.get("To"), "PageSize": PAGE_SIZE}
    if params.get("From"):
        query["From"] = params["From"]
    return query


def next_page(next_page_uri: str | None, version_prefix: str) -> tuple[str, dict[str, str]] | None:
    """(uri relative to the API version, query) of Twilio's `next_page_uri`, or None."""
    if not next_page_uri:
        return None
    parts = urlsplit(next_page_uri)
    path = parts.path
    if path.startswith(version_prefix):
        path = path[len(version_prefix) :]
    return path, dict(parse_qsl(parts.query, keep_blank_values=True))


def created_at(item: Mapping[str, Any], field: str = "date_created") -> float | None:
    """A resource's date: RFC 2822 in the 2010 API, ISO 8601 in the newer ones."""
    value = item.get(field)
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fetched_match(item: Mapping[str, Any], params: Mapping[str, Any], since: float) -> bool:
    """Is this pending verification the one the job's start made (or sent again)?"""
    if item.get("status") != "pending" or item.get("to") != params.get("To"):
        return False
    if str(item.get("channel") or "") != str(params.get("Channel") or "sms"):
        return False
    stamps = [created_at(item, f) for f in ("date_created", "date_updated")]
    return any(t is not None and t >= since - CLOCK_SKEW for t in stamps)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "1")


def same_send(kind: JobKind, item: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Could this resource be the one the job's create made? (Time is checked by `scan`.)"""
    if item.get("to") != params.get("To"):
        return False
    sender = params.get("From")
    if kind is JobKind.makeCall:
        return not sender or item.get("from") == sender
    service = params.get("MessagingServiceSid")
    if service and item.get("messaging_service_sid") != service:
        return False
    # A Messaging Service send has `from` null until it is sent: only a named sender counts.
    if sender and item.get("from") != sender:
        return False
    if "Body" not in params or any(_truthy(params.get(k)) for k in BODY_REWRITES):
        return True
    body, sent = str(item.get("body") or ""), str(params["Body"])
    return body == sent or body == TRIAL_PREFIX + sent


def scan(
    kind: JobKind,
    items: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    since: float,
    taken: Taken | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """(the resource, True) when found; (None, True) when the page reached resources older
    than the send (nothing further can match); (None, False) to look at the next page."""
    for item in items:
        created = created_at(item)
        if created is None:
            continue
        if created < since - CLOCK_SKEW:
            return None, True  # newest first: everything after this is older still
        if not same_send(kind, item, params):
            continue
        if taken is not None and taken(str(item.get("sid"))):
            continue
        return dict(item), True
    return None, False
