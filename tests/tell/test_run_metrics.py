"""Run metrics on a real Pushgateway: pushed from notices, kept fresh, gone at the end."""

from __future__ import annotations

import time
import uuid

import pytest

from gameday.notify import (
    BaselineFigure,
    BreachNotice,
    Notice,
    Notifier,
    RollbackFailedNotice,
    RollbackNotice,
    RunLabels,
    RunMetricsSink,
    StartNotice,
    StepNotice,
    SummaryNotice,
    SweepNotice,
)
from gameday.report.digest import digest
from tests.report.conftest import report
from tests.tell.conftest import group_of, value

pytestmark = pytest.mark.integration


def labels() -> RunLabels:
    return RunLabels(run=str(uuid.uuid4()), scenario="auth-latency", environment="demo")


def wait_group(url: str, run: str, check: object = None, timeout: float = 10.0
               ) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    group = None
    while time.monotonic() < deadline:
        group = group_of(url, run)
        if group is not None and (check is None or check(group)):  # type: ignore[operator]
            return group
        time.sleep(0.1)
    raise AssertionError(f"group of run {run} not as expected within {timeout:g}s: {group}")


def start(run: str, baseline: bool = False) -> StartNotice:
    """The start notice of ``run``, with the baseline if asked for."""
    figures = (BaselineFigure(metric="latency_p95_ms", value=12.5),
               BaselineFigure(metric="error_rate_percent", value=0.0))
    return StartNotice(run=run, text="start", scenario="auth-latency", environment="demo",
                       requester="alice", service="user-service",
                       target="user-service → auth-service", baseline=figures if baseline else ())


def rollback_failed(run: str) -> RollbackFailedNotice:
    """A failed rollback of ``run``."""
    return RollbackFailedNotice(run=run, text="ROLLBACK FAILED", seconds=1.0, problems=("x",))


def the_rest(run: str, severity: int) -> list[Notice]:
    """Step ``severity``, a breach there, rollback and the aborted run's summary."""
    return [
        StepNotice(run=run, text=f"step {severity}", severity=severity, total=3, fault="latency",
                   dwell=1, ttl=2),
        BreachNotice(run=run, text="guard", guard="g", severity=severity, threshold="> 5"),
        RollbackNotice(run=run, text="rollback done", seconds=0.1, reverted=1),
        SummaryNotice(run=run, text="aborted", digest=digest(report("aborted")),
                      postmortem="pm.md"),
    ]


def test_a_run_pushes_its_group_and_deletes_it_at_the_end(gateway: str) -> None:
    """Start, steps and a breach show in the run's group; closing the notifier deletes it."""
    run = labels()
    notifier = Notifier([RunMetricsSink(gateway, run, heartbeat=0.5)])
    notifier.post(start(run.run, baseline=True))
    group = wait_group(gateway, run.run)
    assert group["labels"] == {"job": "gameday", "environment": "demo", "run": run.run}
    assert value(group, "chaos_run_active", scenario="auth-latency") == 1
    assert value(group, "chaos_run_baseline", metric="latency_p95_ms",
                 service="user-service") == 12.5
    step, breach, rollback, summary = the_rest(run.run, 2)
    notifier.post(step)
    notifier.post(breach)
    group = wait_group(gateway, run.run,
                       lambda g: value(g, "chaos_guard_breaches_total") == 1)
    assert value(group, "chaos_run_step") == 2 and value(group, "chaos_run_aborted") == 1
    notifier.post(rollback)
    notifier.post(summary)
    notifier.close()
    assert group_of(gateway, run.run) is None


def test_the_heartbeat_keeps_push_time_fresh(gateway: str) -> None:
    """While the run lasts its group is re-pushed, so push_time_seconds keeps moving."""
    run = labels()
    sink = RunMetricsSink(gateway, run, heartbeat=0.3)
    sink.send(start(run.run))
    first = value(wait_group(gateway, run.run), "push_time_seconds")
    assert first is not None
    later = wait_group(gateway, run.run,
                       lambda g: (value(g, "push_time_seconds") or 0) > first + 0.5)
    assert (value(later, "push_time_seconds") or 0) > first
    sink.close()
    assert group_of(gateway, run.run) is None


def test_a_failed_rollback_keeps_the_group_for_the_alert(gateway: str) -> None:
    """After a failed rollback the group stays, inactive, with chaos_run_rollback_failed 1."""
    run = labels()
    sink = RunMetricsSink(gateway, run, heartbeat=0.3)
    sink.send(start(run.run))
    sink.send(rollback_failed(run.run))
    sink.close()
    group = wait_group(gateway, run.run)
    assert value(group, "chaos_run_rollback_failed") == 1
    assert value(group, "chaos_run_active") == 0


def test_nothing_is_pushed_before_the_start(gateway: str) -> None:
    """A refused or dry run (no start notice) leaves no group behind."""
    run = labels()
    sink = RunMetricsSink(gateway, run, heartbeat=0.3)
    sink.send(SweepNotice(run=run.run, text="swept", count=1))
    time.sleep(0.5)
    sink.close()
    assert group_of(gateway, run.run) is None


def test_a_dead_gateway_never_blocks_the_run() -> None:
    """With nothing listening, send() returns at once and close() within its bound."""
    run = labels()
    sink = RunMetricsSink("http://127.0.0.1:9", run, heartbeat=0.2, timeout=0.5)
    started = time.monotonic()
    for notice in (start(run.run), *the_rest(run.run, 1)):
        sink.send(notice)
    assert time.monotonic() - started < 0.1
    time.sleep(0.5)
    sink.close()
    assert time.monotonic() - started < 4.0 and sink.failures >= 1


def test_the_next_run_sweeps_groups_of_dead_runs(gateway: str) -> None:
    """A run's start deletes groups earlier runs of its environment left, but keeps a failed
    rollback's (its alert waits for a person) and other environments' groups."""
    failed, dead, elsewhere = labels(), labels(), RunLabels(str(uuid.uuid4()), "s", "staging")
    for left in (failed, dead, elsewhere):  # each start sweeps: the failed one must say so first
        sink = RunMetricsSink(gateway, left, heartbeat=60)
        sink.send(start(left.run))
        if left is failed:
            sink.send(rollback_failed(left.run))
        expected = 1 if left is failed else 0
        wait_group(gateway, left.run,
                   lambda g, want=expected: value(g, "chaos_run_rollback_failed") == want)
        # Killed: the process is gone without close(); only its heartbeat thread stops.
        sink._stop.set()
        sink._wake.set()
    assert group_of(gateway, dead.run) is not None
    run = labels()
    sink = RunMetricsSink(gateway, run, heartbeat=60)
    sink.send(start(run.run))
    wait_group(gateway, run.run)
    assert group_of(gateway, dead.run) is None
    assert group_of(gateway, failed.run) is not None
    assert group_of(gateway, elsewhere.run) is not None
    sink.close()
