"""The webhook SSRF guard, with a fake resolver (no DNS, no network)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from twilio_jobs.errors import WebhookError, WebhookRefused
from worker.ssrf import check_url


def resolver(*addresses: str) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.5", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "metadata"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(WebhookRefused) as caught:
        check_url("https://hooks.example.com/in", False, resolver(address))
    assert reason in caught.value.message


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(WebhookRefused):
        check_url("http://hooks.example.com/", False, resolver("93.184.215.14", "10.0.0.1"))


def test_private_addresses_pass_when_allowed() -> None:
    target = check_url("http://localhost:8080/hook?x=1", True, resolver("::1", "127.0.0.1"))
    assert target.url == "http://127.0.0.1:8080/hook?x=1"
    assert target.headers == {"Host": "localhost:8080"}


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "file:///etc/passwd", "gopher://x", "http:///nohost"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(WebhookRefused):
        check_url(url, True, resolver("93.184.215.14"))


def test_the_request_goes_to_the_checked_address() -> None:
    target = check_url("https://user:pw@Hooks.Example.com/in?a=b", False, resolver("93.184.215.14"))
    assert target.url == "https://user:pw@93.184.215.14/in?a=b"
    assert target.headers == {"Host": "hooks.example.com"}
    assert target.extensions == {"sni_hostname": "hooks.example.com"}


def test_ipv6_addresses_are_bracketed() -> None:
    target = check_url("http://hooks.example.com:81", False, resolver("2606:2800:21f:cb07::1"))
    assert target.url == "http://[2606:2800:21f:cb07::1]:81/"
    assert target.headers == {"Host": "hooks.example.com:81"}
    assert target.extensions == {}


def test_resolution_failure_is_retryable_not_refused() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(WebhookError) as caught:
        check_url("https://nowhere.invalid/", False, failing)
    assert not isinstance(caught.value, WebhookRefused)


def test_ip_literals_are_checked_too() -> None:
    with pytest.raises(WebhookRefused):
        check_url("http://169.254.169.254/latest/meta-data/", False)
    with pytest.raises(WebhookRefused):
        check_url("http://[::1]:9000/", False)
