"""TCP mode against a real echo upstream: bytes pass unchanged; latency, bandwidth, slicer.

Delays are measured from the client, with generous bounds (two shared cores): what must hold
is the added delay, per direction, counted per chunk from its arrival, never reordering.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from gameday import procs
from tests.injector.conftest import Proxy, rule, samples
from tests.injector.echo_upstream import pattern
from tests.injector.tcp_client import connect, read_to_end, recv_exactly, round_trip
from tests.injector.tcp_servers import Server, echo_and_proxy, start_tcp_proxy

pytestmark = pytest.mark.integration


def baseline(sock: socket.socket) -> float:
    """The median unfaulted round trip on ``sock``."""
    return statistics.median(round_trip(sock) for _ in range(5))


def test_bytes_pass_both_ways_unchanged(proxy: Proxy) -> None:
    """8 MB of random bytes up and back, written while read, arrive whole; a FIN passes on."""
    data = os.urandom(8 * 1024 * 1024)
    with connect(proxy) as sock:
        writer = threading.Thread(target=lambda: (sock.sendall(data),
                                                  sock.shutdown(socket.SHUT_WR)))
        writer.start()
        back, end = read_to_end(sock)
        writer.join()
    assert end == "eof"
    assert back == data


def test_a_generated_stream_arrives_whole(proxy: Proxy) -> None:
    """20 MB made by the upstream come through byte for byte, then its FIN."""
    with connect(proxy) as sock:
        sock.sendall(b"GEN 20000000\n")
        back, end = read_to_end(sock)
    assert end == "eof" and len(back) == 20_000_000
    assert back == pattern(0, 20_000_000)


@pytest.mark.parametrize("direction, factor", [("downstream", 1), ("upstream", 1),
                                               ("both", 2)])
def test_latency_is_added_per_direction(proxy: Proxy, direction: str, factor: int) -> None:
    """100 ms on one direction adds ~100 ms to a round trip, on both ~200 ms."""
    with connect(proxy) as sock:
        before = baseline(sock)
        proxy.put(rule("latency", ms=100, direction=direction))
        added = statistics.median(round_trip(sock) for _ in range(5)) - before
    assert 0.1 * factor - 0.01 <= added < 0.1 * factor + 0.25, added


def test_latency_reaches_open_connections_and_ends_with_its_rule(proxy: Proxy) -> None:
    """A connection opened before the rule is delayed; when the rule ends it is fast again."""
    with connect(proxy) as sock:
        before = baseline(sock)
        stored = proxy.put(rule("latency", ms=150))[0]
        assert round_trip(sock) - before >= 0.14
        with proxy.admin() as admin:
            assert admin.delete(f"/rules/{stored['id']}").status_code == 200
        assert round_trip(sock) < before + 0.05


def test_latency_counts_from_each_chunks_arrival(proxy: Proxy) -> None:
    """Twenty messages 20 ms apart under 100 ms: each answer is ~100 ms late, not growing."""
    proxy.put(rule("latency", ms=100))
    with connect(proxy) as sock:
        sent, late = [], []
        sock.sendall(b"x")
        recv_exactly(sock, 1)  # the connection is up and the rule has met it
        for index in range(20):
            sent.append(time.perf_counter())
            sock.sendall(bytes([index]))
            time.sleep(0.02)
        for index in range(20):
            assert recv_exactly(sock, 1) == bytes([index])
            late.append(time.perf_counter() - sent[index])
    # Read after the last send: only the first answers waited for the reader, none for others.
    assert max(late[10:]) < 0.1 + 0.25, late
    assert min(late) >= 0.095


def test_a_large_result_is_late_by_the_delay_once(proxy: Proxy) -> None:
    """512 KB under 100 ms downstream take ~100 ms more, not 100 ms per chunk."""
    with connect(proxy) as sock:
        started = time.perf_counter()
        sock.sendall(b"GEN 524288\n")
        back, _ = read_to_end(sock)
        unfaulted = time.perf_counter() - started
    proxy.put(rule("latency", ms=100))
    with connect(proxy) as sock:
        started = time.perf_counter()
        sock.sendall(b"GEN 524288\n")
        back, _ = read_to_end(sock)
        faulted = time.perf_counter() - started
    assert back == pattern(0, 524288)
    # Making the bytes overlaps with the delay, so the difference may be a little under 100 ms.
    assert faulted >= 0.1 and faulted - unfaulted < 0.45, (unfaulted, faulted)


def test_jitter_never_reorders_bytes(proxy: Proxy) -> None:
    """Jitter as wide as the delay, over a 4 MB stream in many chunks: every byte in order."""
    proxy.put(rule("latency", ms=20, jitter_ms=20))
    with connect(proxy) as sock:
        sock.sendall(b"GEN 4000000\n")
        back, end = read_to_end(sock)
    assert end == "eof" and back == pattern(0, 4_000_000)
    assert samples(proxy, "chaos_delay_applied_seconds_count")[0][1] > 1


@pytest.mark.parametrize("direction", ["downstream", "upstream"])
def test_bandwidth_paces_its_direction(proxy: Proxy, direction: str) -> None:
    """80 kbit/s (10 kB/s) on one direction: 20 kB take about 2 s to come back."""
    proxy.put(rule("bandwidth", kbps=80, direction=direction))
    data = os.urandom(20_000)
    with connect(proxy) as sock:
        started = time.perf_counter()
        sock.sendall(data)
        assert recv_exactly(sock, len(data)) == data
        elapsed = time.perf_counter() - started
    assert 1.6 <= elapsed < 4.0, elapsed


def test_slicer_cuts_writes_into_pieces(proxy: Proxy) -> None:
    """Pieces of 10 bytes 30 ms apart: 100 bytes come in small reads over ~300 ms."""
    proxy.put(rule("slicer", size_bytes=10, delay_ms=30))
    data = bytes(range(100))
    with connect(proxy) as sock:
        started = time.perf_counter()
        sock.sendall(data)
        reads = []
        while sum(map(len, reads)) < len(data):
            reads.append(sock.recv(65536))
            assert reads[-1]
        elapsed = time.perf_counter() - started
    assert b"".join(reads) == data
    assert max(map(len, reads)) <= 20 and len(reads) >= 5, [len(r) for r in reads]
    assert 0.2 <= elapsed < 1.5, elapsed


def test_an_unreachable_upstream_closes_the_client(tmp_path: Path) -> None:
    """Nothing listens upstream: the client's connection closes, counted as such."""
    nowhere = Server(0, procs.free_port(), tmp_path / "none.log")
    proxy = start_tcp_proxy(nowhere, tmp_path / "proxy.log")
    try:
        with connect(proxy) as sock:
            sock.sendall(b"hello")
            assert read_to_end(sock)[0] == b""
        found = dict((labels["end"], value) for labels, value in
                     samples(proxy, "chaos_proxy_connections_total"))
        assert found["upstream_unreachable"] == 1
        assert samples(proxy, "chaos_proxy_upstream_errors_total")[0][1] == 1
    finally:
        procs.stop(proxy.pid)


def test_connections_over_the_cap_are_refused(tmp_path: Path) -> None:
    """With --max-connections 2 a third client is closed at once; the two carry on."""
    with echo_and_proxy(tmp_path, args=("--max-connections", "2")) as (_, proxy), \
            connect(proxy) as one, connect(proxy) as two:
        round_trip(one)
        round_trip(two)
        with connect(proxy) as three:
            three.sendall(b"x")
            assert read_to_end(three)[0] == b""
        round_trip(one)
        assert samples(proxy, "chaos_proxy_limit_hits_total")[0][1] == 1
