"""The one place that talks to Twilio: twilio-python over a pooled session, with timeouts,
a configurable base URL, and the translation of every failure into `worker.errors`."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from twilio_jobs.schemas import JobKind
from worker import reconcile
from worker.errors import AmbiguousError, PermanentError, RetryableError, SendError
from worker.http_pool import HostPool

log = logging.getLogger("twilio_jobs.gateway")

SAFE_TO_RETRY = frozenset({429, 503})
AMBIGUOUS = frozenset({500, 502, 504})
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
MAX_CACHED_ACCOUNTS = 1024
API_PREFIX = "/2010-04-01"


class BaseUrlHttpClient(HttpClient):  # type: ignore[misc]
    """twilio-python's HttpClient on one keep-alive connection pool (worker.http_pool),
    sending every request to `base_url` instead of api.twilio.com (so TWILIO_EDGE /
    TWILIO_REGION cannot redirect it).

    twilio-python builds the request (auth, headers, form); this only moves the bytes, without
    requests' per-call session work (environment proxy lookup, hooks, cookies) that was a large
    share of a job's CPU in a profile (docs/benchmarks.md). No retries and no redirects; a
    transport failure is raised already classified (worker.errors).
    """

    def __init__(self, base_url: str, pool_size: int, connect_timeout: float, read_timeout: float):
        super().__init__(log, False, read_timeout)
        base = urlsplit(base_url.rstrip("/"))
        self.pool = HostPool(
            f"{base.scheme}://{base.netloc}", pool_size, connect_timeout, read_timeout
        )
        self._prefix = base.path
        self._auth: dict[tuple[str, str], str] = {}

    def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        parts = urlsplit(url)
        target = self._prefix + parts.path
        query = [parts.query] if parts.query else []
        if params:
            query.append(urlencode({k: v for k, v in params.items() if v is not None}, True))
        if query:
            target += "?" + "&".join(query)
        fields = dict(headers or {})
        if auth is not None:
            fields["Authorization"] = self._basic(auth)
        body = urlencode(data, doseq=True).encode() if data else None
        reply = self.pool.request(method, target, body, fields, timeout)
        return Response(reply.status, reply.body.decode("utf-8", "replace"), reply.headers)

    def _basic(self, auth: tuple[str, str]) -> str:
        value = self._auth.get(auth)
        if value is None:
            raw = f"{auth[0]}:{auth[1]}".encode()
            value = "Basic " + base64.b64encode(raw).decode()
            if len(self._auth) > 1024:
                self._auth.clear()
            self._auth[auth] = value
        return value


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        try:
            moment = parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def classify_rest_error(exc: TwilioRestException, headers: Mapping[str, str] | None) -> SendError:
    message = f"[HTTP {exc.status}] {exc.msg}"
    code = exc.code if isinstance(exc.code, int) else None
    kwargs: dict[str, Any] = {"status": exc.status, "code": code}
    if exc.status in SAFE_TO_RETRY or code == 20429:
        return RetryableError(message, retry_after=_retry_after(headers), **kwargs)
    if exc.status in AMBIGUOUS:
        return AmbiguousError(message, **kwargs)
    if 400 <= exc.status < 500:
        return PermanentError(message, **kwargs)
    return AmbiguousError(message, **kwargs)


class TwilioGateway:
    def __init__(
        self,
        base_url: str,
        *,
        pool_size: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
    ) -> None:
        self.http = BaseUrlHttpClient(base_url, pool_size, connect_timeout, read_timeout)
        self._env = {"TWILIO_JOBS": "1"}  # keeps twilio-python from reading os.environ
        self._versions: dict[tuple[str, str], Any] = {}

    def _version(self, account_sid: str, token: str) -> Any:
        """twilio-python's API version object for these credentials, built once per account
        (a Client per job cost more CPU than the request it made)."""
        version = self._versions.get((account_sid, token))
        if version is None:
            client = Client(account_sid, token, http_client=self.http, environment=self._env)
            version = client.api.v2010
            if len(self._versions) >= MAX_CACHED_ACCOUNTS:
                self._versions.clear()
            self._versions[(account_sid, token)] = version
        return version

    def _call(self, version: Any, method: str, uri: str, failure: str, **kwargs: Any) -> Any:
        # Transport failures come out of worker.http_pool already classified.
        response = version.request(method, uri, headers=FORM_HEADERS, **kwargs)
        if not 200 <= response.status_code < 300:
            error = version.exception(method, uri, response, failure)
            raise classify_rest_error(error, response.headers) from None
        try:
            return json.loads(response.text)
        except ValueError:
            raise AmbiguousError("Twilio answered with a body that is not JSON") from None

    def warm(self) -> None:
        """twilio-python imports its API modules on first use, under the GIL, which would hold
        back every thread's first send at once (and so bunch them): do it at start-up."""
        self._version("AC" + "0" * 32, "warm-up")

    def create(
        self, kind: JobKind, account_sid: str, token: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create the Message or Call; returns the resource exactly as Twilio returned it."""
        version = self._version(account_sid, token)
        uri = f"/Accounts/{account_sid}/{kind.resource}.json"
        resource: dict[str, Any] = self._call(
            version, "POST", uri, "Unable to create record", data=dict(params)
        )
        return resource

    def find(
        self,
        kind: JobKind,
        account_sid: str,
        token: str,
        params: Mapping[str, Any],
        since: float,
        taken: Callable[[str], bool] | None = None,
    ) -> dict[str, Any] | None:
        """A resource this job may have created at or after `since` (unix time), in any state
        (queued included), or None when there is none (`worker.reconcile`)."""
        version = self._version(account_sid, token)
        uri = f"/Accounts/{account_sid}/{kind.resource}.json"
        query: Mapping[str, Any] = reconcile.list_query(kind, params)
        key = "calls" if kind is JobKind.makeCall else "messages"
        for _ in range(reconcile.MAX_PAGES):
            page = self._call(version, "GET", uri, "Unable to fetch page", params=query)
            found, done = reconcile.scan(kind, page.get(key) or [], params, since, taken)
            if done:
                return found
            following = reconcile.next_page(page.get("next_page_uri"), API_PREFIX)
            if following is None:
                return None
            uri, query = following
        raise AmbiguousError(
            f"Could not tell whether Twilio created it: more than {reconcile.MAX_PAGES} pages "
            f"of {kind.resource} to this recipient since the send"
        )


def quiet_twilio_logging() -> None:
    """twilio-python logs every request body at INFO; keep message content out of logs."""
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


__all__ = ["TwilioGateway", "SendError", "classify_rest_error", "quiet_twilio_logging"]
