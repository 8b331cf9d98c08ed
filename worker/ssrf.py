"""Where a result webhook may go: http(s) to a public address, checked when it is sent.

The host is resolved once, every address it resolves to is checked, and the request is sent to
the checked address itself (the URL's host replaced by the IP, with the original `Host` header
and, for https, the original name for SNI and certificate checks). A name that resolves to a
public address when checked and a private one a moment later (DNS rebinding) therefore cannot
send the request inside the network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio_jobs.errors import WebhookError, WebhookRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

NAT64 = ipaddress.ip_network("64:ff9b::/96")


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def refusal(address: Address) -> str | None:
    """Why a webhook may not go to `address`, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
    for reason, hit in (
        ("a loopback", address.is_loopback),
        ("a link-local (or cloud metadata)", address.is_link_local),
        ("an unspecified", address.is_unspecified),
        ("a multicast", address.is_multicast),
        ("a reserved", address.is_reserved),
        ("a private", address.is_private),
        ("a non-public", not address.is_global),
    ):
        if hit:
            return f"{reason} address"
    return None


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def check_url(url: str, allow_private: bool, resolver: Resolver = resolve) -> Target:
    """The pinned request target for `url`. Raises WebhookRefused for a URL that is never
    allowed, and WebhookError when the name cannot be resolved now."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused(f"Refused: callback URL scheme must be http or https: {url}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise WebhookRefused(f"Refused: invalid port in callback URL: {url}") from None
    if not host:
        raise WebhookRefused(f"Refused: callback URL has no host: {url}")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise WebhookRefused(f"Refused: invalid host name in callback URL: {host}") from None
    try:
        found = resolver(ascii_host, port or (443 if parts.scheme == "https" else 80))
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    except (OSError, UnicodeError, ValueError) as exc:
        raise WebhookError(f"Could not resolve {host}: {exc}") from None
    if not addresses:
        raise WebhookError(f"Could not resolve {host}: no address")
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise WebhookRefused(f"Refused: {host} resolves to {address}, {reason}")
    chosen = next((a for a in addresses if a.version == 4), addresses[0])
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + literal + (f":{port}" if port else "")
    shown_host = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    headers = {"Host": shown_host + (f":{port}" if port else "")}
    extensions = {"sni_hostname": ascii_host} if parts.scheme == "https" else {}
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return Target(pinned, headers, extensions)
