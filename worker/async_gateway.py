"""Twilio creates on asyncio, for the campaign fast path: twilio-python's
`AsyncTwilioHttpClient` on one aiohttp session per process, with the same base URL handling
and the same error classification as the synchronous gateway (`worker.twilio_gateway`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
from twilio.base.version import Version
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

from twilio_jobs.schemas import JobKind
from worker.errors import AmbiguousError, RetryableError, SendError
from worker.twilio_gateway import FORM_HEADERS, classify_rest_error

API = "/2010-04-01"


class QuietAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """twilio-python formats every request and response for its INFO log even when nobody
    listens; on the hot path that is wasted CPU, and it would put message content in logs."""

    def log_request(self, kwargs: dict[str, Any]) -> None:
        pass

    def log_response(self, status_code: int, response: Any) -> None:
        pass


def classify_aiohttp_error(exc: BaseException) -> SendError:
    """Did the request leave this machine? If it may have, the outcome is ambiguous."""
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return RetryableError(f"Could not connect to Twilio: {type(exc).__name__}")
    if isinstance(exc, aiohttp.SocketTimeoutError | asyncio.TimeoutError):
        return AmbiguousError("Twilio did not answer in time (read timeout)")
    return AmbiguousError(f"Connection to Twilio lost after sending: {type(exc).__name__}")


class AsyncTwilioGateway:
    """Create it inside the event loop that will use it (aiohttp sessions belong to a loop)."""

    def __init__(
        self, base_url: str, *, pool_size: int, connect_timeout: float, read_timeout: float
    ) -> None:
        self.base = base_url.rstrip("/") + API
        self.http = QuietAsyncHttpClient(pool_connections=False)
        self.http.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool_size, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout),
        )

    async def create(
        self, kind: JobKind, account_sid: str, token: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        uri = f"/Accounts/{account_sid}/{kind.resource}.json"
        try:
            # The form is encoded here: given a dict, aiohttp builds a FormData (and a multipart
            # writer) per request to produce the same bytes.
            response: Response = await self.http.request(
                "POST", self.base + uri, data=urlencode(params, doseq=True).encode(),
                headers=FORM_HEADERS, auth=(account_sid, token),
            )  # fmt: skip
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise classify_aiohttp_error(exc) from None
        if not 200 <= response.status_code < 300:
            error = Version.exception("POST", uri, response, "Unable to create record")
            raise classify_rest_error(error, response.headers) from None
        try:
            resource: dict[str, Any] = json.loads(response.text)
        except ValueError:
            raise AmbiguousError("Twilio answered with a body that is not JSON") from None
        return resource

    async def close(self) -> None:
        await self.http.close()
