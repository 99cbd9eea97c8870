"""A real Prometheus (1 s scrape) over scrape targets whose gauges the tests set.

Targets are added through a file_sd file, so each test can have its own and stop it without
disturbing the others. Every process is started in its own session and stopped by PID.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gameday.procs import free_port, port_open, start, stop, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
TARGET_SCRIPT = Path(__file__).with_name("metrics_target.py")
SCRAPE_INTERVAL = 1.0


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        body: bytes = answer.read()
        return body


@dataclass
class Target:
    """One scrape target process with settable gauges."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def instance(self) -> str:
        """The ``instance`` label Prometheus gives its series."""
        return f"127.0.0.1:{self.port}"

    def set(self, name: str, value: float, age: float = 0.0) -> None:
        """Set gauge ``name``; ``age`` pins its timestamp that many seconds in the past."""
        query = urllib.parse.urlencode({"name": name, "value": value, "age": age})
        _get(f"http://127.0.0.1:{self.port}/set?{query}")

    def stop(self) -> None:
        """Stop the target by PID: its series go stale in Prometheus."""
        stop(self.process.pid)


@dataclass
class PromStack:
    """A Prometheus process and the targets it scrapes."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    targets: list[Target] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the Prometheus HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, object]]:
        """An instant query, straight over HTTP (for waiting, not for the code under test)."""
        body = _get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        result: list[dict[str, object]] = json.loads(body)["data"]["result"]
        return result

    def add_target(self) -> Target:
        """Start a target, add it to the file_sd list and wait for its first scrape."""
        port = free_port()
        process = start([sys.executable, str(TARGET_SCRIPT), str(port)],
                        log=self.folder / f"target-{port}.log")
        target = Target(port, process)
        self.targets.append(target)
        wait_until(lambda: port_open(port), 20, what=f"scrape target on port {port}")
        listing = [{"targets": [t.instance for t in self.targets]}]
        staged = self.folder / "targets.json.tmp"
        staged.write_text(json.dumps(listing))
        staged.replace(self.folder / "targets.json")
        wait_until(lambda: bool(self.query(f'up{{instance="{target.instance}"}} == 1')), 60,
                   what=f"first scrape of {target.instance}")
        return target

    def set_and_wait(self, target: Target, name: str, value: float) -> None:
        """Set a gauge and wait until Prometheus has scraped that value."""
        target.set(name, value)
        selector = f'gameday_test_value{{name="{name}",instance="{target.instance}"}}'
        wait_until(lambda: bool(self.query(f"{selector} == {value!r}")), 30,
                   what=f"{name}={value} visible")

    def stop(self) -> None:
        """Stop Prometheus and every target, by PID."""
        for target in self.targets:
            target.stop()
        stop(self.process.pid)


def start_prometheus(folder: Path) -> PromStack:
    """Start Prometheus on a free loopback port with a 1 s scrape of the file_sd targets."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "targets.json").write_text("[]")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "gameday-test", "file_sd_configs": [
            {"files": [str(folder / "targets.json")], "refresh_interval": "1s"}]}],
    }
    (folder / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    process = start([PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}",
                     f"--storage.tsdb.path={folder / 'data'}",
                     f"--web.listen-address=127.0.0.1:{port}"],
                    log=folder / "prometheus.log")
    stack = PromStack(folder, port, process)

    def ready() -> bool:
        try:
            _get(f"{stack.url}/-/ready", timeout=0.5)
        except OSError:
            return False
        return True

    try:
        wait_until(ready, 60, what="Prometheus ready")
    except TimeoutError:
        stop(process.pid)
        raise
    return stack


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromStack]:
    """A Prometheus shared by the module's tests, stopped by PID afterwards."""
    stack = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def target(prom: PromStack) -> Target:
    """A scrape target shared by the module's tests (each test uses its own gauge names)."""
    return prom.add_target()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A URL whose TCP server accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        # Connections complete in the kernel's backlog; nothing ever reads or writes.
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
