"""The game-day flow end to end on the demo stack: outcomes, and no fault left behind."""

from __future__ import annotations

import signal
import time

import pytest

from tests.deploy.api import PrefectAPI
from tests.flows.conftest import Bench, dump, finished, outcome, signal_group, timed

pytestmark = pytest.mark.integration


def test_run_that_passes_every_step(bench: Bench) -> None:
    """A mild ladder holds every step, exits 0, and leaves no rule on the proxy."""
    code, out = bench.run("quick-pass")
    assert code == 0, out
    assert "outcome: passed" in out
    assert bench.rules() == []
    (events,) = bench.journals().values()
    assert outcome(events) == "passed", dump(events)
    report = next((bench.root / "reports").glob("*/postmortem.md")).read_text()
    assert "highest severity held: **2** of 2" in report


def test_guard_trips_mid_step(bench: Bench) -> None:
    """A step past the auth timeout trips the error guard; the postmortem names it."""
    code, out = bench.run("quick-trip")
    assert code == 4, out
    assert bench.rules() == []
    report = next((bench.root / "reports").glob("*/postmortem.md")).read_text()
    assert "Aborted by a guard" in report
    guards = report.split("## Guards", 1)[1]
    row = next(line for line in guards.splitlines() if line.startswith("| `error_rate_percent`"))
    cells = [c.strip() for c in row.split("|")]
    assert cells[2] == "2" and float(cells[3]) > 5 and cells[4] == "> 5", row


def test_exception_in_a_task_rolls_back(bench: Bench) -> None:
    """A driver error mid-ladder fails the run, and the first step's fault is reverted."""
    code, out = bench.run("ttl-overflow")
    assert code == 1, out
    assert bench.rules() == []
    (events,) = bench.journals().values()
    assert outcome(events) == "failed", dump(events)
    assert any(getattr(e, "event", "") == "fault_reverted" for e in events)


#: How long ``chaosctl start`` may take to exit after its rollback line. It takes about 0.5 s;
#: the bound leaves room for two shared CI cores.
EXIT_AFTER_ROLLBACK = 5.0


@pytest.mark.parametrize(("how", "exit_code"), [
    ("sigterm", 143), ("ctrl-c", 130), ("sigterm, then ctrl-c", 143)])
def test_signal_mid_step_rolls_back(bench: Bench, how: str, exit_code: int) -> None:
    """SIGTERM by PID, or Ctrl-C to the process group, mid-step: the fault is reverted at
    once, the run ends Cancelled in Prefect, the journal and the postmortem say "cancelled by
    signal", and ``chaosctl start`` exits 128 + the signal soon after the rollback line,
    printing no Prefect crash. A second signal while it stops changes nothing."""
    proc = bench.start("long-hold")
    rule = bench.wait_for_rule("long-hold")
    if how.startswith("sigterm"):
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # a Ctrl-C after it lands while the run stops
    if how.endswith("ctrl-c"):
        signal_group(proc, signal.SIGINT)
    output = timed(proc)
    out = output.text
    assert output.code == exit_code, out
    assert bench.rules() == [], out
    assert time.time() < rule["expires_at"], "reverted by rollback, not by the TTL"
    name = "SIGTERM" if how.startswith("sigterm") else "SIGINT"
    said = f"cancelled by signal {name} during step 1; every fault was reverted"
    assert f"outcome: cancelled — {said}" in out, out
    for noise in ("Crash detected", "Traceback", "TerminationSignal", "Finished in state"):
        assert noise not in out, out
    seconds = output.exited - output.first("[rollback] rollback done")
    assert seconds < EXIT_AFTER_ROLLBACK, f"exited {seconds:.2f}s after the rollback line"
    ((run, events),) = bench.journals().items()
    assert outcome(events) == "cancelled", dump(events)
    ended = [e for e in events if getattr(e, "event", "") == "run_ended"]
    assert said in ended[-1].summary, dump(events)  # type: ignore[union-attr]
    reverted = [e for e in events if getattr(e, "event", "") == "fault_reverted"]
    assert reverted and reverted[0].handle is not None  # type: ignore[union-attr]
    assert said in (bench.root / "reports" / run / "postmortem.md").read_text()
    api = PrefectAPI(str(bench.stack.state.prefect_api_url))
    state = api.flow_run(run)["state"]
    assert (state["type"], state["message"]) == ("CANCELLED", said), state
    tasks = api.call("POST", "/task_runs/filter",
                     json={"flow_runs": {"id": {"any_": [run]}}})
    assert {t["name"].split("-")[0]: t["state"]["type"] for t in tasks} == {
        "prepare": "COMPLETED", "escalate": "CANCELLED"}, tasks


def test_signal_while_waiting_for_the_environment(bench: Bench) -> None:
    """SIGTERM while a run waits for another's lock (plain blocking code): it ends at once,
    Cancelled with nothing injected, and the game day holding the lock goes on."""
    first = bench.start("longer-hold")
    bench.wait_for_rule("longer-hold")
    second = bench.start("quick-pass", "--wait-lock", "120s")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _waiting(bench) is None:
        time.sleep(0.1)
    run = _waiting(bench)
    assert run is not None, "the second run never started waiting for the lock"
    signalled = time.monotonic()
    second.send_signal(signal.SIGTERM)
    output = timed(second)
    out = output.text
    assert output.code == 143, out
    assert output.exited - signalled < EXIT_AFTER_ROLLBACK, out
    said = "cancelled by signal SIGTERM before the first step; nothing was injected"
    assert f"outcome: cancelled — {said}" in out, out
    assert "Crash detected" not in out and "Traceback" not in out, out
    events = bench.journals()[run]
    assert outcome(events) == "cancelled", dump(events)
    kinds = {getattr(e, "event", "") for e in events} | {getattr(e, "kind", "") for e in events}
    assert not kinds & {"lock", "fault_intent"}, dump(events)
    state = PrefectAPI(str(bench.stack.state.prefect_api_url)).flow_run(run)["state"]
    assert state["type"] == "CANCELLED", state
    assert {r["labels"]["scenario"] for r in bench.rules()} == {"longer-hold"}
    first.send_signal(signal.SIGTERM)
    first_code, first_out = finished(first)
    assert first_code == 143, first_out


def _waiting(bench: Bench) -> str | None:
    """The quick-pass run, once its journal has its plan: it waits for the lock next."""
    return next((run for run, events in bench.journals().items()
                 if any(getattr(e, "scenario", "") == "quick-pass" for e in events)), None)


def test_sigkill_fault_expires_by_ttl(bench: Bench) -> None:
    """After SIGKILL nothing rolls back, yet the proxy drops the rule by its TTL (here shorter
    than the environment's lease)."""
    proc = bench.start("long-hold", env_file=bench.environment_file(lease="10m"))
    rule = bench.wait_for_rule("long-hold")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [r["id"] for r in bench.rules()] == [rule["id"]]
    deadline = rule["expires_at"] + 2.0
    while time.time() < deadline and bench.rules():
        time.sleep(0.1)
    assert bench.rules() == [], "the rule outlived its TTL + 2 s"


def test_next_run_sweeps_what_a_killed_run_left(bench: Bench) -> None:
    """The next run's prepare reverts a killed run's fault and records the sweep (a lease
    longer than the TTL keeps the fault in place until then)."""
    proc = bench.start("long-hold", env_file=bench.environment_file(lease="10m"))
    leftover = bench.wait_for_rule("long-hold")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_run = leftover["labels"]["run"]
    code, out = bench.run("quick-pass")
    assert code == 0, out
    journals = bench.journals()
    latest = next(events for run, events in journals.items() if run != killed_run)
    swept = [e for e in latest if getattr(e, "kind", "") == "swept"]
    assert swept and killed_run in swept[0].message, dump(latest)  # type: ignore[union-attr]
    assert bench.rules() == []


def test_dry_run_injects_nothing(bench: Bench) -> None:
    """A dry run checks and plans but the proxy injects nothing."""
    before = bench.injected()
    code, out = bench.run("quick-pass", "--dry-run", "--json")
    assert code == 0, out
    assert '"outcome": "dry_run"' in out and "latency 20ms" in out
    time.sleep(1.5)
    assert bench.rules() == [] and bench.injected() == before


def test_second_start_on_one_environment_is_refused(bench: Bench) -> None:
    """While one game day runs, a second on the same environment is refused, never overlaps."""
    first = bench.start("long-hold")
    bench.wait_for_rule("long-hold")
    code, out = bench.run("quick-pass")
    assert code == 3, out
    assert "busy" in out
    assert {r["labels"]["scenario"] for r in bench.rules()} == {"long-hold"}
    first_code, first_out = finished(first)
    assert first_code == 0, first_out


def test_disabled_environment_is_refused(bench: Bench) -> None:
    """The kill switch refuses the run with its reason and injects nothing."""
    before = bench.injected()
    code, out = bench.run("quick-pass", env_file=bench.environment_file(enabled=False))
    assert code == 3, out
    assert "kill switch" in out and "Traceback" not in out
    assert bench.injected() == before and bench.rules() == []


def test_disabled_mission_is_refused(bench: Bench) -> None:
    """A mission with enable: false is refused by prepare."""
    mission = bench.root / "mission.yaml"
    mission.write_text("scenario: quick-pass\nenvironment: demo\nenable: false\n"
                       "requester: tester\n")
    code, out = bench.run("--mission", str(mission))
    assert code == 3, out
    assert "mission is disabled" in out


def test_min_load_not_met_is_refused(bench: Bench) -> None:
    """Without the traffic a scenario needs, prepare refuses and injects nothing."""
    before = bench.injected()
    code, out = bench.run("needs-load")
    assert code == 3, out
    assert "min_load not met" in out
    assert bench.injected() == before and bench.rules() == []
