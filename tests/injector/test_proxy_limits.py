"""Deadlines and caps at the real proxy: each one cuts what it should, answers, and is counted.

The proxy runs with 1 s deadlines and a 20-connection cap in front of the raw upstream (whose
``/stall`` never answers); the defaults (10 s, 30 s, 60 s, 4096) are checked in ``--help``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from gameday import procs
from gameday.injector.proxy.chunked import MAX_CHUNK_LINE, MAX_TRAILER_BYTES
from gameday.injector.proxy.http1 import MAX_HEAD, MAX_HEADERS, MAX_RESPONSE_HEADERS
from gameday.injector.proxy.limits import Limits
from tests.injector.conftest import (
    ROOT,
    Proxy,
    RawUpstream,
    read_response,
    rule,
    samples,
    start_proxy,
    start_raw_upstream,
)

pytestmark = pytest.mark.integration

DEADLINE = 1.0
#: Several times the deadline: when the cut must have come by.
BOUND = DEADLINE * 5
CAP = 20


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, RawUpstream]]:
    """A proxy with 1 s deadlines and a cap of 20 connections, in front of the raw upstream."""
    folder = tmp_path_factory.mktemp("limits")
    raw = start_raw_upstream(folder)
    try:
        running = start_proxy(raw.url, folder / "proxy.log", args=[
            "--head-timeout", "1s", "--body-timeout", "1s", "--upstream-timeout", "1s",
            "--max-connections", str(CAP)])
        yield running, raw
        procs.stop(running.pid)
    finally:
        procs.stop(raw.pid)


@pytest.fixture
def proxy(limited: tuple[Proxy, RawUpstream]) -> Iterator[Proxy]:
    """The limited proxy with no rules before and after the test."""
    running = limited[0]
    running.put()
    yield running
    running.put()


def hits(proxy: Proxy, limit: str) -> float:
    """How often ``limit`` cut something, from ``/metrics``."""
    found = [value for labels, value in samples(proxy, "chaos_proxy_limit_hits_total")
             if labels.get("limit") == limit]
    return found[0] if found else 0.0


def read_all(sock: socket.socket) -> bytes:
    """Everything until the proxy closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_head_trickled_past_its_deadline_gets_408(proxy: Proxy) -> None:
    """A head sent a byte at a time is cut at the head deadline with 408, however it trickles."""
    before = hits(proxy, "head_timeout")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND * 2) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /ok HTTP/1.1\r\n")
        sock.settimeout(0.3)
        reply = b""
        for byte in b"Host: x\r\nX-Slow: " + b"s" * 100:
            try:
                sock.sendall(bytes([byte]))
                reply = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if reply:
                break
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert DEADLINE * 0.9 <= elapsed < BOUND
    assert hits(proxy, "head_timeout") == before + 1


def test_body_that_stops_coming_gets_408(proxy: Proxy) -> None:
    """A request whose body stops mid-way is answered 408 after the body idle timeout."""
    before = hits(proxy, "body_timeout")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND) as sock:
        sock.sendall(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        started = time.monotonic()
        reply = read_all(sock)
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert DEADLINE * 0.9 <= elapsed < BOUND
    assert hits(proxy, "body_timeout") == before + 1


def test_upstream_that_never_answers_gets_504(proxy: Proxy) -> None:
    """An upstream that takes the request and never answers gives a 504; the connection goes on."""
    before = hits(proxy, "upstream_timeout")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND) as sock:
        sock.sendall(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        reply = read_response(sock)
        elapsed = time.monotonic() - started
        assert reply.startswith(b"HTTP/1.1 504"), reply
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).endswith(b"\r\n\r\nok")
    assert DEADLINE * 0.9 <= elapsed < BOUND
    assert hits(proxy, "upstream_timeout") == before + 1


def test_response_longer_than_the_upstream_deadline_is_not_cut(proxy: Proxy) -> None:
    """The upstream deadline ends with the response head: a 2 s download comes whole."""
    size = 4_000_000
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND) as sock:
        sock.sendall(b"GET /stream/%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
        data = b""
        while len(data.partition(b"\r\n\r\n")[2]) < size:
            time.sleep(0.1)  # a slow reader: about 2 s in all
            chunk = sock.recv(256 * 1024)
            assert chunk
            data += chunk
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        after = read_response(sock)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 504" not in data and after.endswith(b"\r\n\r\nok")


def test_injected_delay_does_not_count_against_the_deadlines(proxy: Proxy) -> None:
    """A 1.5 s latency fault, then a body and a 0.5 s upstream: no deadline of 1 s fires."""
    proxy.put(rule("latency", ms=1500))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND) as sock:
        sock.sendall(b"POST /slow-head/500 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        time.sleep(0.2)
        sock.sendall(b"body")
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert reply.endswith(b"\r\n\r\nok")


def test_connections_over_the_cap_get_503(proxy: Proxy) -> None:
    """With the cap reached a new connection is answered 503 and closed; a freed slot is reused."""
    before = hits(proxy, "max_connections")
    held = []
    try:
        for _ in range(CAP):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND)
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).endswith(b"ok")
            held.append(sock)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND) as extra:
            reply = read_all(extra)
        assert reply.startswith(b"HTTP/1.1 503"), reply
        assert hits(proxy, "max_connections") == before + 1
        held.pop().close()
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=BOUND) as again:
            again.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(again).endswith(b"ok")
    finally:
        for sock in held:
            sock.close()


def test_help_lists_every_limit_and_its_default() -> None:
    """``chaosctl proxy --help`` names each deadline, cap and fixed limit with its default."""
    done = subprocess.run([sys.executable, "-m", "gameday", "proxy", "--help"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    text = " ".join(done.stdout.split())
    defaults = Limits()
    for option, default in (("--head-timeout", f"{defaults.head_timeout:g}s"),
                            ("--body-timeout", f"{defaults.body_timeout:g}s"),
                            ("--upstream-timeout", f"{defaults.upstream_timeout:g}s"),
                            ("--max-connections", str(defaults.max_connections)),
                            ("--idle-timeout", f"{defaults.idle_timeout:g}s")):
        assert f"{option} " in text and f"(default: {default})" in text, option
    for fixed in (f"{MAX_HEAD // 1024} KiB", f"{MAX_HEADERS} header lines",
                  f"{MAX_RESPONSE_HEADERS} header lines", f"{MAX_CHUNK_LINE} bytes",
                  f"{MAX_TRAILER_BYTES // 1024} KiB"):
        assert fixed in text, fixed


@pytest.mark.parametrize("option", [["--head-timeout", "0s"], ["--upstream-timeout", "soon"],
                                    ["--max-connections", "0"]])
def test_bad_limit_is_refused_at_start_up(option: list[str]) -> None:
    """A deadline of 0 or nonsense, or a cap below 1, stops the proxy from starting (exit 2)."""
    done = subprocess.run([sys.executable, "-m", "gameday", "proxy", "--listen", "127.0.0.1:0",
                           "--upstream", "http://127.0.0.1:9", "--admin", "127.0.0.1:0",
                           "--token-env", "NO_SUCH_TOKEN_VAR", *option],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2
    assert option[0] in done.stderr
