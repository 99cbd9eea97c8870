"""Raw calls to the Prefect API ride out a busy server as Prefect's own client does.

A loopback front answers the first requests with 503 or 429 (as a Prefect server on a locked
SQLite database, or a rate-limiting proxy, does) and passes the rest to the demo stack's real
Prefect server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from gameday import procs
from gameday.errors import ConfigError
from gameday.prefect_http import MAX_RETRIES, retry_delay
from orchestration.provision import use_api
from tests.demo_stack import DemoStack
from tests.deploy.api import PrefectAPI
from tests.fakes.server import LoopbackServer

pytestmark = pytest.mark.integration


@dataclass
class BusyFront:
    """Answers ``(status, Retry-After)`` from ``busy`` first, then forwards to ``upstream``."""

    upstream: str
    #: Its own address, once serving.
    url: str = ""
    busy: list[tuple[int, str | None]] = field(default_factory=list)
    #: (monotonic time, method, path, status answered) of every request.
    seen: list[tuple[float, str, str, int]] = field(default_factory=list)
    always_busy: bool = False

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body for one request."""
        if self.busy or self.always_busy:
            status, retry_after = self.busy.pop(0) if self.busy else (503, "0")
            self.seen.append((time.monotonic(), method, path, status))
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return status, headers, b'{"detail": "busy"}'
        response = httpx.request(method, f"{self.upstream}{path}", content=body or None,
                                 headers={"content-type": "application/json"}, timeout=15,
                                 trust_env=False)
        self.seen.append((time.monotonic(), method, path, response.status_code))
        return response.status_code, {}, response.content


class _Handler(BaseHTTPRequestHandler):
    fake: BusyFront

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        status, headers, content = self.fake.answer(self.command, self.path, body)
        self.send_response(status)
        for name, value in {"content-type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = _any

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def front(demo_stack: DemoStack) -> Iterator[BusyFront]:
    """A busy front for the demo's Prefect server (its root URL; the API is under /api)."""
    api = str(demo_stack.state.prefect_api_url)
    fake = BusyFront(upstream=api.removesuffix("/api"))
    server = LoopbackServer()
    server.start(_Handler, fake, "busy-front")
    fake.url = server.url
    try:
        yield fake
    finally:
        server.stop()


def test_busy_answers_are_retried_after_what_they_ask(front: BusyFront) -> None:
    """503 then 429, each with Retry-After: 0.5: the third try reaches the server, ≥ 0.5 s on."""
    front.busy = [(503, "0.5"), (429, "0.5")]
    api = PrefectAPI(f"{front.url}/api")
    limits = api.call("POST", "/v2/concurrency_limits/filter", json={})
    assert isinstance(limits, list)
    times = [t for t, *_ in front.seen]
    assert [status for *_, status in front.seen] == [503, 429, 200]
    assert times[1] - times[0] >= 0.5 and times[2] - times[1] >= 0.5


def test_use_api_waits_out_a_busy_server(front: BusyFront,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The health check that starts every command is not fooled by a 503 with Retry-After."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    front.busy = [(503, "0.2"), (503, "0.2")]
    url = f"{front.url}/api"
    assert use_api(url) == url
    assert [status for *_, status in front.seen] == [503, 503, 200]


def test_a_server_busy_for_good_is_reported_after_prefects_retries(
        front: BusyFront, monkeypatch: pytest.MonkeyPatch) -> None:
    """Always 503: one try and five retries, then the command says the server does not answer."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    front.always_busy = True
    with pytest.raises(ConfigError, match=r"does not answer.*503"):
        use_api(f"{front.url}/api")
    assert len(front.seen) == MAX_RETRIES + 1


def test_a_refused_connection_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening: no retries (as Prefect's client before its first answer)."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    began = time.monotonic()
    with pytest.raises(ConfigError, match="does not answer"):
        use_api(f"http://127.0.0.1:{procs.free_port()}/api")
    assert time.monotonic() - began < 1.0


def test_backoff_without_retry_after_doubles_with_jitter() -> None:
    """2, 4, 8 … s within ±20 %; a Retry-After is a floor, never shortened."""
    for attempt in (1, 2, 3):
        low, high = retry_delay(attempt, draw=lambda: 0.0), retry_delay(attempt, draw=lambda: 1.0)
        assert (low, high) == pytest.approx((0.8 * 2**attempt, 1.2 * 2**attempt))
    assert retry_delay(4, "3", draw=lambda: 0.0) == 3.0
    assert retry_delay(4, "3", draw=lambda: 1.0) == pytest.approx(3.6)
    assert retry_delay(1, "soon", draw=lambda: 0.5) == 2.0  # unreadable: the plain backoff
