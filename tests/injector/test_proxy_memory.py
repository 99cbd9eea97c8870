"""Flow control holds across pipelined requests and pooled upstream connections.

Clients pipeline a burst of 200 KB responses and then a multi-GB one from the raw upstream
(which makes its bytes as the socket drains, so the GBs never exist anywhere); the proxy's
resident memory, read from ``/proc/PID/status``, must stay bounded however slowly the clients
read. Each scenario stops early (and fails) as soon as the bound is crossed.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from gameday.injector.proxy.limits import BUFFER_LIMIT
from tests.injector.conftest import Proxy, RawUpstream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIB = 1024 * 1024
#: The issue's bound per connection, plus room for the allocator's own noise in one reading.
ONE_CLIENT_GROWTH = 4 * BUFFER_LIMIT + 8 * MIB
MANY_CLIENTS_RSS = 300 * MIB


def rss(pid: int) -> int:
    """Resident bytes of ``pid``."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert match, "no VmRSS"
    return int(match.group(1)) * 1024


def burst(count: int, small: int, big: int) -> bytes:
    """``count`` pipelined requests for ``small`` bytes, then one for ``big`` bytes."""
    one = b"GET /stream/%d HTTP/1.1\r\nHost: x\r\n\r\n"
    return one % small * count + one % big


def test_slow_reader_after_a_pipelined_burst_keeps_memory_flat(
        raw_proxy: tuple[Proxy, RawUpstream]) -> None:
    """30 pipelined 200 KB GETs then a 4 GB one, read 256 KiB every 0.3 s: RSS barely moves."""
    proxy, _ = raw_proxy
    base = peak = rss(proxy.pid)
    got = 0
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(burst(30, 200_000, 4_000_000_000))
        until = time.monotonic() + 3
        while time.monotonic() < until and peak - base <= ONE_CLIENT_GROWTH:
            got += len(sock.recv(256 * 1024, socket.MSG_WAITALL))
            for _ in range(3):
                time.sleep(0.1)
                peak = max(peak, rss(proxy.pid))
    assert peak - base <= ONE_CLIENT_GROWTH, f"grew {(peak - base) / MIB:.1f} MiB"
    assert got >= 256 * 1024


def test_200_clients_that_never_read_keep_rss_under_300_mib(
        raw_proxy: tuple[Proxy, RawUpstream]) -> None:
    """200 clients that pipeline a burst then a 1 GB response and never read: RSS ≤ 300 MiB."""
    proxy, _ = raw_proxy
    clients = []
    peak = rss(proxy.pid)
    try:
        for _ in range(200):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", proxy.port))
            sock.sendall(burst(30, 200_000, 1_000_000_000))
            clients.append(sock)
            peak = max(peak, rss(proxy.pid))
            if peak > MANY_CLIENTS_RSS:
                break
        until = time.monotonic() + 4
        while time.monotonic() < until and peak <= MANY_CLIENTS_RSS:
            time.sleep(0.1)
            peak = max(peak, rss(proxy.pid))
    finally:
        for sock in clients:
            sock.close()
    assert len(clients) == 200 or peak > MANY_CLIENTS_RSS
    assert peak <= MANY_CLIENTS_RSS, f"peak {peak / MIB:.0f} MiB"
