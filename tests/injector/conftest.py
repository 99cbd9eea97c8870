"""Fixtures that start a real upstream and a real ``chaosctl proxy`` on loopback, stopped by PID."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gameday import procs

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789"
LABELS = {"run": "run-1", "scenario": "slow-payments", "environment": "dev", "step": 1}


@dataclass
class Upstream:
    """A running test upstream (``tests/injector/upstream.py`` under uvicorn)."""

    pid: int
    port: int

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Proxy:
    """A running ``chaosctl proxy`` and how to talk to it."""

    pid: int
    port: int
    admin_port: int
    log: Path
    token: str | None = TOKEN
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL of the data plane."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API."""
        return f"http://127.0.0.1:{self.admin_port}"

    def admin(self) -> httpx.Client:
        """An admin API client carrying the token."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.admin_url, headers=headers, timeout=10)

    def put(self, *rules: dict[str, Any]) -> list[dict[str, Any]]:
        """Replace the rule set; the stored rules."""
        with self.admin() as client:
            response = client.put("/rules", json={"rules": list(rules)})
        assert response.status_code == 200, response.text
        stored: list[dict[str, Any]] = response.json()["rules"]
        return stored

    def rules(self) -> list[dict[str, Any]]:
        """The stored rules."""
        with self.admin() as client:
            listed: list[dict[str, Any]] = client.get("/rules").json()["rules"]
        return listed

    def events(self, name: str) -> list[dict[str, Any]]:
        """JSON log lines with ``event == name``."""
        lines = [json.loads(line) for line in self.log.read_text().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if line.get("event") == name]


def rule(kind: str, ttl: float = 60, **fields: Any) -> dict[str, Any]:
    """A rule input for the admin API."""
    return {"fault": {"kind": kind, **fields}, "labels": LABELS, "ttl": ttl}


def start_upstream(log: Path, port: int | None = None) -> Upstream:
    """Start the test upstream and wait until it accepts connections."""
    port = port or procs.free_port()
    process = procs.start([sys.executable, "-m", "uvicorn", "tests.injector.upstream:app",
                           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                           "--backlog", "2048", "--timeout-keep-alive", "30"], log=log, cwd=ROOT)
    try:
        procs.wait_until(lambda: procs.port_open(port), 30, what="test upstream")
    except TimeoutError:
        procs.stop(process.pid)
        raise
    return Upstream(process.pid, port)


def start_proxy(upstream_url: str, log: Path, *, token: str | None = TOKEN,
                max_ttl: str = "600s", target: str = "", seed: int = 7,
                args: Sequence[str] = (), env: dict[str, str] | None = None) -> Proxy:
    """Start ``chaosctl proxy`` in front of ``upstream_url`` and wait for its admin API.

    ``args`` are further options (limits, for instance).
    """
    port, admin_port = procs.free_port(), procs.free_port()
    argv = [sys.executable, "-m", "gameday", "proxy", "--listen", f"127.0.0.1:{port}",
            "--upstream", upstream_url, "--admin", f"127.0.0.1:{admin_port}",
            "--max-ttl", max_ttl, "--seed", str(seed), "--token-env", "TEST_PROXY_TOKEN"]
    if target:
        argv += ["--target", target]
    argv += args
    process = procs.start(argv, log=log, env={"TEST_PROXY_TOKEN": token or "", **(env or {})},
                          cwd=ROOT)
    proxy = Proxy(process.pid, port, admin_port, log, token)

    def healthy() -> bool:
        try:
            return httpx.get(f"{proxy.admin_url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        procs.wait_until(healthy, 30, what="proxy admin API")
    except TimeoutError:
        procs.stop(process.pid)
        raise AssertionError(f"proxy did not start:\n{log.read_text()}") from None
    return proxy


@dataclass
class RawUpstream:
    """A running raw-socket upstream (``tests/injector/raw_upstream.py``) and its capture."""

    pid: int
    port: int
    capture: Path

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def received(self, marker: bytes) -> bytes:
        """Everything received on the connection whose bytes contain ``marker``."""
        for file in sorted(self.capture.glob("*.bin")):
            data = file.read_bytes()
            if marker in data:
                return data
        return b""


def start_raw_upstream(folder: Path) -> RawUpstream:
    """Start the raw upstream, capturing into ``folder/capture``."""
    port = procs.free_port()
    capture = folder / "capture"
    process = procs.start([sys.executable, "-m", "tests.injector.raw_upstream", str(port),
                           str(capture)], log=folder / "raw-upstream.log", cwd=ROOT)
    try:
        procs.wait_until(lambda: procs.port_open(port), 30, what="raw upstream")
    except TimeoutError:
        procs.stop(process.pid)
        raise
    return RawUpstream(process.pid, port, capture)


@pytest.fixture(scope="module")
def raw_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, RawUpstream]]:
    """A proxy in front of the raw upstream, for the whole module."""
    folder = tmp_path_factory.mktemp("raw")
    raw = start_raw_upstream(folder)
    try:
        running = start_proxy(raw.url, folder / "proxy.log")
        yield running, raw
        procs.stop(running.pid)
    finally:
        procs.stop(raw.pid)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A test upstream for the whole module."""
    server = start_upstream(tmp_path_factory.mktemp("upstream") / "upstream.log")
    yield server
    procs.stop(server.pid)


@pytest.fixture(scope="module")
def proxy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A proxy in front of ``upstream`` for the whole module (token ``TOKEN``, max TTL 600s)."""
    running = start_proxy(upstream.url, tmp_path_factory.mktemp("proxy") / "proxy.log",
                          target="checkout/payments")
    yield running
    procs.stop(running.pid)


@pytest.fixture
def clean(proxy: Proxy) -> Iterator[Proxy]:
    """The module's proxy with no rules before and after the test."""
    proxy.put()
    yield proxy
    proxy.put()


def wait_for(check: Any, timeout: float, what: str) -> float:
    """Poll ``check`` every 10 ms; the time it first held (``time.time()``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(0.01)
    raise AssertionError(f"{what} not reached within {timeout:g}s")


def samples(proxy: Proxy, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of metric ``name`` from ``/metrics``, parsed by prometheus_client's parser."""
    text = httpx.get(f"{proxy.admin_url}/metrics", timeout=5).text
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found.append((dict(sample.labels), sample.value))
    return found


def upstream_count(proxy: Proxy) -> int:
    """Requests the upstream has seen, asked through the proxy."""
    count: int = httpx.get(f"{proxy.url}/count", timeout=5).json()["count"]
    return count


def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a new connection, half-close it, and read until the proxy closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # what came before the reset is the answer
    return received


def read_response(sock: socket.socket) -> bytes:
    """Read one response with a Content-Length body from ``sock``: its head and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return head + b"\r\n\r\n" + body
