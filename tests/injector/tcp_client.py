"""Client-side helpers for the TCP mode's tests: real sockets, timed from the client."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.injector.conftest import Proxy
from tests.injector.tcp_servers import Server


@contextmanager
def connect(proxy: Proxy, timeout: float = 10) -> Iterator[socket.socket]:
    """A client connection to the proxy's data plane."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield sock
    finally:
        sock.close()


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``sock``; AssertionError if it closes first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def round_trip(sock: socket.socket, data: bytes = b"ping") -> float:
    """Seconds for ``data`` to come back from the echo upstream."""
    started = time.perf_counter()
    sock.sendall(data)
    assert recv_exactly(sock, len(data)) == data
    return time.perf_counter() - started


def read_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """Everything until the connection ends, and how: ``eof`` (FIN) or ``reset`` (RST)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return data, "reset"
    return data, "eof"


def held(sock: socket.socket, seconds: float = 0.3) -> bool:
    """Whether nothing arrives on ``sock`` for ``seconds``."""
    sock.settimeout(seconds)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(10)
    return False


def upstream_ends(echo: Server) -> list[dict[str, Any]]:
    """The echo upstream's log: one record per ended connection."""
    return [json.loads(line) for line in echo.log.read_text().splitlines()
            if line.startswith("{")]


def wait_for_upstream_end(echo: Server, before: int, timeout: float = 5) -> dict[str, Any]:
    """The first upstream connection record after the ``before`` already logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ends = upstream_ends(echo)
        if len(ends) > before:
            return ends[before]
        time.sleep(0.02)
    raise AssertionError("the upstream connection did not end")
