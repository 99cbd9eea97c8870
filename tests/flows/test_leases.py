"""Leased faults on the demo stack: a dead or frozen run's fault ends within seconds, and a live
run's lease holds even while Prometheus does not answer.

The demo environment polls guards every second, so its lease is the default 3 s.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from gameday.journal import GuardSampleEvent, read_journal
from gameday.procs import stop
from tests.flows.conftest import Bench, dump, finished, outcome, start_proxy

pytestmark = pytest.mark.integration

LEASE = 3.0
#: A lapsed lease is gone within the lease and the proxy's timer; a loaded machine gets more.
GONE_BOUND = LEASE + 5.0


def _gone_within(bench: Bench, seconds: float) -> float:
    """Seconds until the auth proxy lists no rule (AssertionError after ``seconds``)."""
    started = time.monotonic()
    while bench.rules():
        assert time.monotonic() - started < seconds, f"a rule outlived {seconds:g}s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_sigkill_leaves_the_fault_only_for_its_lease(bench: Bench) -> None:
    """A 60 s step's fault, its run SIGKILLed: gone within the lease, not the 62 s TTL."""
    proc = bench.start("longer-hold")
    rule = bench.wait_for_rule("longer-hold")
    assert rule["lease"] == LEASE and rule["expires_at"] - time.time() > 30
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _gone_within(bench, GONE_BOUND)
    log = (bench.stack.state_dir / "logs" / "auth-proxy.log").read_text()
    assert any('"lease_expired"' in line and rule["id"] in line for line in log.splitlines())


def test_a_frozen_run_wakes_to_a_lapsed_lease_and_aborts(bench: Bench) -> None:
    """SIGSTOP the whole run past its lease: the proxy ends the fault; after SIGCONT the run
    ends the step as "fault vanished: lease expired", rolls back clean and says so."""
    proc = bench.start("longer-hold")
    rule = bench.wait_for_rule("longer-hold")
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        _gone_within(bench, GONE_BOUND)
        time.sleep(1.0)
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    code, out = finished(proc, timeout=120)
    assert code == 4, out
    assert "lease expired" in out
    run = rule["labels"]["run"]
    events = read_journal(bench.state / "runs" / run / "journal.jsonl")
    vanished = [e for e in events if getattr(e, "kind", "") == "fault_vanished"]
    assert vanished and vanished[0].lease_expired, dump(events)  # type: ignore[attr-defined]
    assert outcome(events) == "aborted"
    report = (bench.root / "reports" / run / "postmortem.md").read_text()
    assert "fault vanished: lease expired" in report
    assert bench.rules() == []


def test_a_stalled_prometheus_does_not_let_the_lease_lapse(
        bench: Bench, spare_proxy: dict[str, int], tmp_path: Path) -> None:
    """Prometheus behind a proxy that holds every query for 3 × the lease, mid-step: the guard
    (``on_no_data: ignore``) sees errors, the fault stays in place throughout, no lease lapses,
    and the step holds."""
    prometheus = bench.stack.state.prometheus_url
    ports = {**spare_proxy, "upstream": int(prometheus.rsplit(":", 1)[1])}
    pid = start_proxy(bench, ports, tmp_path / "prometheus-proxy.log")
    admin = httpx.Client(base_url=f"http://127.0.0.1:{ports['admin']}", trust_env=False,
                         headers={"authorization": f"Bearer {bench.stack.token}"}, timeout=5)
    try:
        env = bench.environment_file(prometheus={
            "url": f"http://127.0.0.1:{ports['listen']}", "timeout": "1s",
            "scrape_interval": "1s"})
        proc = bench.start("blind-hold", env_file=env)
        rule = bench.wait_for_rule("blind-hold")
        stall = {"fault": {"kind": "blackhole"}, "ttl": 3 * LEASE,
                 "labels": {"run": "stall", "scenario": "stall", "environment": "test",
                            "step": 1}}
        assert admin.post("/rules", json=stall).status_code == 201
        ends = time.monotonic() + 3 * LEASE
        while time.monotonic() < ends:
            assert [r["id"] for r in bench.rules()] == [rule["id"]]
            time.sleep(0.2)
        code, out = finished(proc, timeout=120)
        assert code == 0, out
        run = rule["labels"]["run"]
        events = read_journal(bench.state / "runs" / run / "journal.jsonl")
        assert not [e for e in events if getattr(e, "kind", "") == "fault_vanished"], \
            dump(events)
        blind = [e for e in events if isinstance(e, GuardSampleEvent)
                 and e.sample.error is not None]
        assert len(blind) >= LEASE, "the stall did not reach the guard"
        assert "lease expired" not in out
    finally:
        admin.close()
        stop(pid)
