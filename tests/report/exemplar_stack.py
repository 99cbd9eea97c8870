"""A real Prometheus with exemplar storage, scraping a target whose histogram carries the
exemplars a test gives it (OpenMetrics, one series per exemplar, timestamps as given).

The target is an HTTP server in a thread of the test process; Prometheus is started in its own
session and stopped by PID.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gameday.procs import free_port, start, stop, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass(frozen=True)
class Kept:
    """One exemplar the target exposes: the request's latency in seconds, when, which trace."""

    service: str
    trace_id: str
    seconds: float
    at: float


class _Target(BaseHTTPRequestHandler):
    exemplars: list[Kept]
    lock: threading.Lock

    def do_GET(self) -> None:
        with self.lock:
            kept = list(self.exemplars)
        lines = ["# TYPE service_request_duration_seconds histogram"]
        for index, e in enumerate(kept):
            labels = f'service="{e.service}",route="r{index}"'
            lines += [f'service_request_duration_seconds_bucket{{{labels},le="+Inf"}} 1 '
                      f'# {{trace_id="{e.trace_id}"}} {e.seconds} {e.at:.3f}',
                      f"service_request_duration_seconds_count{{{labels}}} 1",
                      f"service_request_duration_seconds_sum{{{labels}}} {e.seconds}"]
        body = ("\n".join([*lines, "# EOF"]) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", OPENMETRICS)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class ExemplarStack:
    """Prometheus (``--enable-feature=exemplar-storage``) and the target it scrapes."""

    url: str
    process: subprocess.Popen[bytes]
    server: ThreadingHTTPServer
    exemplars: list[Kept] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, *kept: Kept) -> None:
        """Expose ``kept`` and wait until Prometheus has stored every one of them."""
        with self.lock:
            self.exemplars.extend(kept)
        for e in kept:
            selector = f'service_request_duration_seconds_bucket{{service="{e.service}"}}'
            wait_until(lambda e=e, s=selector: e.trace_id in self._stored(s, e.at), 60,
                       interval=0.2, what=f"exemplar {e.trace_id} stored")

    def _stored(self, selector: str, at: float) -> str:
        query = urllib.parse.urlencode({"query": selector, "start": at - 1, "end": at + 1})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query_exemplars?{query}",
                                        timeout=2) as answer:
                return json.dumps(json.loads(answer.read()))
        except OSError:
            return ""

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        stop(self.process.pid)


def start_stack(folder: Path) -> ExemplarStack:
    """The target on a free port, then Prometheus scraping it every second."""
    lock = threading.Lock()
    exemplars: list[Kept] = []
    handler = type("Target", (_Target,), {"exemplars": exemplars, "lock": lock})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
              "scrape_configs": [{"job_name": "report-exemplars", "static_configs": [
                  {"targets": [f"127.0.0.1:{server.server_address[1]}"]}]}]}
    (folder / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    process = start([PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}",
                     f"--storage.tsdb.path={folder / 'data'}",
                     f"--web.listen-address=127.0.0.1:{port}",
                     "--enable-feature=exemplar-storage"], log=folder / "prometheus.log")
    stack = ExemplarStack(f"http://127.0.0.1:{port}", process, server, exemplars, lock)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{stack.url}/-/ready", timeout=0.5):
                return True
        except OSError:
            return False

    try:
        wait_until(ready, 60, what="Prometheus ready")
    except TimeoutError:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def exemplar_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExemplarStack]:
    """A Prometheus with exemplar storage shared by a module's tests (each uses its own
    ``service`` label), stopped by PID afterwards."""
    stack = start_stack(tmp_path_factory.mktemp("exemplars"))
    try:
        yield stack
    finally:
        stack.stop()
