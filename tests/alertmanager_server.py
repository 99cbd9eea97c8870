"""A real Alertmanager for tests, with a webhook receiver in the test process.

``prometheus-alertmanager`` (the Debian package) runs on a free loopback port with clustering
off, its state in a temporary folder, grouping set to fire within a second or two; every
notification it sends lands in ``Receiver.notifications``. Stopped by PID.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gameday import procs

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@dataclass
class Receiver:
    """Notifications received, newest last."""

    notifications: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alertnames(self, status: str = "firing") -> list[str]:
        """Names of the alerts notified with ``status``, in order."""
        with self.lock:
            return [a["labels"].get("alertname", "") for n in self.notifications
                    for a in n.get("alerts", []) if a.get("status") == status]


@dataclass
class RunningAlertmanager:
    """One Alertmanager process and its receiver."""

    url: str
    pid: int
    receiver: Receiver

    def post_alert(self, labels: dict[str, str], ends_in: float = 120.0) -> None:
        """Raise (or, with ``ends_in`` <= 0, resolve) an alert, as Prometheus would."""
        now = time.time()
        body = [{"labels": labels, "startsAt": _iso(now - 1),
                 "endsAt": _iso(now + ends_in if ends_in > 0 else now - 0.5)}]
        httpx.post(f"{self.url}/api/v2/alerts", json=body, timeout=5).raise_for_status()

    def active(self) -> list[dict[str, Any]]:
        """Every alert it holds now."""
        answer = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    def silences(self) -> list[dict[str, Any]]:
        """Every silence it holds, expired ones included."""
        answer = httpx.get(f"{self.url}/api/v2/silences", timeout=5)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def unique(name: str) -> str:
    """An alert name no other test uses."""
    return f"{name}{uuid.uuid4().hex[:8]}"


def wait_until(check: Any, timeout: float, what: str) -> None:
    """Poll ``check`` every 0.2 s until true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g}s: {what}")
        time.sleep(0.2)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.notifications.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[RunningAlertmanager]:
    """A running Alertmanager notifying a receiver in this process."""
    if BINARY is None:
        pytest.fail("prometheus-alertmanager is missing: scripts/install-debs.sh "
                    "prometheus-alertmanager (make install does)")
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump({
        "route": {"receiver": "test", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test", "webhook_configs": [
            {"url": f"http://127.0.0.1:{server.server_port}/", "send_resolved": True}]}]}))
    port = procs.free_port()
    process = procs.start([BINARY, f"--config.file={config}",
                           f"--storage.path={tmp_path / 'data'}",
                           f"--web.listen-address=127.0.0.1:{port}",
                           "--cluster.listen-address=", "--log.level=warn"],
                          log=tmp_path / "alertmanager.log")
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, "Alertmanager ready")
        yield RunningAlertmanager(url, process.pid, receiver)
    finally:
        procs.stop(process.pid)
        server.shutdown()
        server.server_close()
