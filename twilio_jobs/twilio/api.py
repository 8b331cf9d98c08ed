"""Twilio's API over a transport: `create` (and, on the sync side, `find` for reconciliation).

The transport only moves bytes (`Transport.send(Request) -> Answer`), raising the
`twilio_jobs.twilio.wire` errors when no answer came; everything else (URLs, auth, forms,
paging, error classification) is here, once, for the sync and the async side alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twilio_jobs import tracing
from twilio_jobs.errors import AmbiguousError, PermanentError
from twilio_jobs.schemas import JobKind
from twilio_jobs.settings import Settings
from twilio_jobs.twilio import reconcile, wire
from twilio_jobs.twilio.endpoints import API, Endpoint, Host, endpoint


class Transport(Protocol):
    def send(self, request: wire.Request) -> wire.Answer: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, request: wire.Request) -> wire.Answer: ...

    async def close(self) -> None: ...


class Hosts:
    """Base URLs per Twilio host. `TWILIO_API_BASE_URL` set to anything but api.twilio.com
    sends every host there (a proxy, or the fake in tests); `TWILIO_VERIFY_BASE_URL` overrides
    Verify's alone."""

    def __init__(self, settings: Settings) -> None:
        self.api = settings.twilio_api_base_url.rstrip("/")
        default = self.api == "https://api.twilio.com"
        verify = settings.twilio_verify_base_url
        self.verify = (verify or ("https://verify.twilio.com" if default else self.api)).rstrip("/")

    def url(self, host: Host, path: str) -> str:
        return (self.verify if host == "verify" else self.api) + path


def create_request(
    hosts: Hosts, spec: Endpoint, account_sid: str, token: str, params: Mapping[str, Any]
) -> wire.Request:
    return wire.request(
        "POST",
        hosts.url(spec.host, spec.create_path(account_sid, params)),
        account_sid,
        token,
        form=spec.form(params),
        final_codes=spec.final_codes,
    )


def _attrs(req: wire.Request) -> dict[str, Any]:
    """The span of a Twilio request: method and URL (no credentials are in either)."""
    return {"http.request.method": req.method, "url.full": req.url.split("?", 1)[0]}


class TwilioApi:
    def __init__(self, transport: Transport, settings: Settings) -> None:
        self.transport = transport
        self.hosts = Hosts(settings)

    def create(
        self, kind: JobKind, account_sid: str, token: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create the resource; returns it exactly as Twilio returned it."""
        spec = endpoint(kind)
        req = create_request(self.hosts, spec, account_sid, token, params)
        with tracing.span(f"twilio {spec.kind.value}", kind="client", attributes=_attrs(req)):
            return wire.interpret(req, self.transport.send(req))

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
        (queued included), or None when there is none (`twilio_jobs.twilio.reconcile`)."""
        spec = endpoint(kind)
        if spec.find_by == "fetch":
            return self._fetch(spec, account_sid, token, params, since, taken)
        url = self.hosts.url(spec.host, spec.lookup_path(account_sid, params))
        query: Mapping[str, Any] = reconcile.list_query(kind, params)
        for _ in range(reconcile.MAX_PAGES):
            req = wire.request(
                "GET", url, account_sid, token, query=query, failure=wire.PAGE_FAILED
            )
            page = wire.interpret(req, self.transport.send(req))
            found, done = reconcile.scan(kind, page.get(spec.list_key) or [], params, since, taken)
            if done:
                return found
            following = reconcile.next_page(page.get("next_page_uri"), API)
            if following is None:
                return None
            path, query = following
            url = self.hosts.url(spec.host, API + path)
        raise AmbiguousError(
            f"Could not tell whether Twilio created it: more than {reconcile.MAX_PAGES} pages "
            f"of {spec.list_key} to this recipient since the send"
        )

    def _fetch(
        self,
        spec: Endpoint,
        account_sid: str,
        token: str,
        params: Mapping[str, Any],
        since: float,
        taken: Callable[[str], bool] | None,
    ) -> dict[str, Any] | None:
        url = self.hosts.url(spec.host, spec.lookup_path(account_sid, params))
        req = wire.request("GET", url, account_sid, token, failure=wire.FETCH_FAILED)
        try:
            item = wire.interpret(req, self.transport.send(req))
        except PermanentError as exc:
            if exc.status == 404:
                return None  # nothing pending for this recipient: the start never happened
            raise
        if not reconcile.fetched_match(item, params, since):
            return None
        if taken is not None and taken(str(item.get("sid"))):
            return None
        return item

    def close(self) -> None:
        self.transport.close()


class AsyncTwilioApi:
    """The campaign fast path's side: creates only (a lost answer is reconciled by `TwilioApi`
    on a thread, as rare as it is)."""

    def __init__(self, transport: AsyncTransport, settings: Settings) -> None:
        self.transport = transport
        self.hosts = Hosts(settings)

    async def create(
        self, kind: JobKind, account_sid: str, token: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        spec = endpoint(kind)
        req = create_request(self.hosts, spec, account_sid, token, params)
        with tracing.span(f"twilio {spec.kind.value}", kind="client", attributes=_attrs(req)):
            return wire.interpret(req, await self.transport.send(req))

    async def close(self) -> None:
        await self.transport.close()


__all__ = ["AsyncTransport", "AsyncTwilioApi", "Hosts", "Transport", "TwilioApi"]
