"""worker.http_pool: keep-alive reuse, and what each transport failure is classified as."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from twilio_jobs.errors import AmbiguousError, RetryableError
from worker.http_pool import HostPool

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            want = int(line.split(b":")[1])
            while len(body) < want:
                body += conn.recv(65536)
    return data


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A loopback server running `handle(conn)` for each connection it accepts."""
    sockets: list[socket.socket] = []

    def start(handle: Callable[[socket.socket], None]) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        sockets.append(listener)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for sock in sockets:
        sock.close()


def test_keep_alive_connection_is_reused(server: Callable[..., str]) -> None:
    accepted = []

    def handle(conn: socket.socket) -> None:
        accepted.append(conn)
        while _read_request(conn):
            conn.sendall(OK)

    pool = HostPool(server(handle), size=4, connect_timeout=1, read_timeout=2)
    for _ in range(3):
        reply = pool.request("POST", "/x", b"a=1", {"Content-Type": "text/plain"})
        assert (reply.status, reply.body) == (200, b"{}")
    assert len(accepted) == 1
    pool.close()


def test_connection_closed_by_server_while_idle_is_not_reused(server: Callable[..., str]) -> None:
    def handle(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(OK)  # keep-alive promised, then closed: the next request needs a new one
        conn.close()

    pool = HostPool(server(handle), size=4, connect_timeout=1, read_timeout=2)
    assert pool.request("GET", "/a", None, {}).status == 200
    threading.Event().wait(0.1)
    assert pool.request("GET", "/b", None, {}).status == 200


def test_refused_connection_is_safe_to_retry() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    pool = HostPool(f"http://127.0.0.1:{port}", size=1, connect_timeout=1, read_timeout=1)
    with pytest.raises(RetryableError, match="Could not connect"):
        pool.request("POST", "/x", b"", {})


def test_read_timeout_is_ambiguous(server: Callable[..., str]) -> None:
    def handle(conn: socket.socket) -> None:
        _read_request(conn)
        threading.Event().wait(2)  # never answers in time
        conn.close()

    pool = HostPool(server(handle), size=1, connect_timeout=1, read_timeout=0.2)
    with pytest.raises(AmbiguousError, match="read timeout"):
        pool.request("POST", "/x", b"a=1", {})


def test_connection_lost_after_sending_is_ambiguous(server: Callable[..., str]) -> None:
    def handle(conn: socket.socket) -> None:
        _read_request(conn)
        conn.close()

    pool = HostPool(server(handle), size=1, connect_timeout=1, read_timeout=2)
    with pytest.raises(AmbiguousError, match="lost after sending"):
        pool.request("POST", "/x", b"a=1", {})
