"""Game days whose watchers fail mid-step: they abort and leave nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gameday.demo import prometheus as demo_prometheus
from gameday.procs import free_port, port_open, start, stop, wait_until
from tests.flows.conftest import Bench, dump, outcome, start_proxy

pytestmark = pytest.mark.integration


@pytest.fixture
def own_prometheus(bench: Bench, tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A second Prometheus scraping the demo stack; (pid, port)."""
    port = free_port()
    config = bench.stack.state_dir / "prometheus.yml"
    proc = start(demo_prometheus.argv(config, tmp_path / "tsdb", port), log=tmp_path / "p.log")
    try:
        wait_until(lambda: port_open(port), 30, what="second Prometheus")
        time.sleep(6)  # a few scrapes, so guards have fresh data and the baseline a window
        yield proc.pid, port
    finally:
        stop(proc.pid)


def test_prometheus_killed_mid_step_fails_closed(bench: Bench,
                                                 own_prometheus: tuple[int, int]) -> None:
    """With Prometheus gone the guards cannot see: the run aborts and rolls back."""
    pid, port = own_prometheus
    env_file = bench.environment_file(prometheus={"url": f"http://127.0.0.1:{port}",
                                                  "timeout": "1s", "scrape_interval": "1s"})
    proc = bench.start("long-hold", env_file=env_file)
    bench.wait_for_rule("long-hold")
    stop(pid, grace=0.5)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 4, out
    assert bench.rules() == []
    (events,) = bench.journals().values()
    assert outcome(events) == "aborted", dump(events)
    ended = [e for e in events if getattr(e, "event", "") == "hold_ended"]
    assert ended and ended[0].result.verdict.state == "error"  # type: ignore[union-attr]


def test_proxy_restarted_mid_step_aborts(bench: Bench, spare_proxy: dict[str, int],
                                         tmp_path: Path) -> None:
    """A proxy restarted mid-step loses the rule: the run notices, aborts, leaves nothing."""
    pid = start_proxy(bench, spare_proxy, tmp_path / "proxy.log")
    admin = f"http://127.0.0.1:{spare_proxy['admin']}"
    endpoints = yaml.safe_load(bench.stack.env_file.read_text())["endpoints"]
    endpoints[0]["admin_url"] = admin
    env = bench.environment_file(endpoints=endpoints)
    try:
        proc = bench.start("long-hold", env_file=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not bench.rules(admin=admin):
            time.sleep(0.1)
        assert bench.rules(admin=admin), "the run never applied its fault"
        stop(pid, grace=0.5)
        pid = start_proxy(bench, spare_proxy, tmp_path / "proxy2.log")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 4, out
        assert bench.rules(admin=admin) == []
        (events,) = bench.journals().values()
        assert any(getattr(e, "kind", "") == "fault_vanished" for e in events), dump(events)
        assert outcome(events) == "aborted"
    finally:
        stop(pid)


def test_an_unreachable_prometheus_is_refused_after_three_tries(bench: Bench) -> None:
    """Preflight's first query is tried three times, then the run is refused (exit 3) naming
    Prometheus, with nothing injected."""
    env_file = bench.environment_file(prometheus={"url": f"http://127.0.0.1:{free_port()}",
                                                  "timeout": "1s", "scrape_interval": "1s"})
    code, out = bench.run("quick-pass", env_file=env_file)
    assert code == 3, out
    assert "Prometheus is not reachable (3 tries)" in out
    assert "Traceback" not in out
    assert bench.rules() == []
