"""Keep-alive HTTP/1.1 connections to one host, over the standard library's http.client.

The worker makes one kind of request, to one host, at high rates; what it needs from a client
is a pool, timeouts, TLS and an answer to "did the request leave this machine?". http.client
sends a request's head and body in one write and cost about half the CPU per request of
urllib3 in a profile (docs/benchmarks.md).

Failures are raised as `twilio_jobs.twilio.wire` classifies them: nothing could be sent
(connection refused, connect timeout, DNS) is `RetryableError`; anything after the request may
have been sent (read timeout, connection reset or closed before a full answer) is
`AmbiguousError`.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import urllib.request
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from twilio_jobs.twilio import wire


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: http.client.HTTPMessage


class HostPool:
    def __init__(self, origin: str, size: int, connect_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(origin)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.size = size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._context = ssl.create_default_context() if self.https else None
        self._proxy = _https_proxy(self.host) if self.https else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str],
        read_timeout: float | None = None,
    ) -> Reply:
        conn = self._checkout()
        if conn is None:
            conn = self._connect()
        if conn.sock is not None:
            conn.sock.settimeout(read_timeout or self.read_timeout)
        try:
            conn.request(method, target, body=body, headers=dict(headers))
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:
            conn.close()
            raise wire.read_timeout() from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise wire.lost_after_sending(type(exc).__name__) from None
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        return Reply(response.status, data, response.headers)

    def _connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.https:
            if self._proxy is not None:
                host, port, auth = self._proxy
                conn = http.client.HTTPSConnection(
                    host, port, timeout=self.connect_timeout, context=self._context
                )
                conn.set_tunnel(self.host, self.port, headers=auth)
            else:
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.connect_timeout, context=self._context
                )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise wire.not_sent("connection timed out") from None
        except OSError as exc:
            conn.close()
            raise wire.not_sent(type(exc).__name__) from None
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _checkout(self) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if conn.sock is not None and not _readable(conn.sock):
                return conn
            # An idle connection with something to read was closed by the server (or is out
            # of step): never send on it.
            conn.close()

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _https_proxy(host: str) -> tuple[str, int, dict[str, str]] | None:
    """The HTTPS proxy from the environment (HTTPS_PROXY, NO_PROXY), as requests honoured it."""
    proxy = urllib.request.getproxies().get("https")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    auth = {}
    if parts.username:
        raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth["Proxy-Authorization"] = "Basic " + b64encode(raw).decode()
    return parts.hostname or "localhost", parts.port or 8080, auth
