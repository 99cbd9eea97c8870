"""Rollback fails closed: a place it cannot check leaves the run not clean, and says why."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gameday.commands.run import _stopped
from gameday.drivers import DRIVERS
from gameday.journal import (
    FaultAppliedEvent,
    FaultIntentEvent,
    FaultRevertedEvent,
    Journal,
    PlanEvent,
    RevertFailedEvent,
    read_journal,
)
from gameday.models import Endpoint, Environment
from gameday.paths import journal_path
from gameday.procs import free_port
from gameday.protocol import rollback
from gameday.protocol.context import endpoint_key
from gameday.protocol.outcome import decide
from gameday.protocol.reap import revert_environment
from gameday.protocol.rollback import Unchecked, revert_run, unclean_rollbacks
from gameday.records import Handle, Labels

RUN = "run-fail-closed"
TOKEN = "GAMEDAY_TEST_UNSET_TOKEN"


def exploding(endpoint: Endpoint) -> Any:
    """A driver factory that fails with an error that is not the kit's own."""
    raise RuntimeError(f"no client library for {endpoint.service}")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state folder of the test's own, no token, and this process's unclean rollbacks
    forgotten afterwards (``chaosctl start`` reads them)."""
    monkeypatch.setenv("GAMEDAY_STATE", str(tmp_path))
    monkeypatch.delenv(TOKEN, raising=False)
    monkeypatch.setattr(rollback, "_UNCLEAN", [])
    yield tmp_path


def environment(*, stress: bool = False) -> Environment:
    """A proxy endpoint whose token variable is unset (and a stress endpoint, if asked)."""
    endpoints: list[dict[str, Any]] = [
        {"service": "user-service", "dependency": "auth-service", "driver": "proxy",
         "admin_url": f"http://127.0.0.1:{free_port()}", "token": {"env": TOKEN}}]
    if stress:
        endpoints.append({"service": "redis", "driver": "stress"})
    return Environment.model_validate({
        "name": "demo", "prometheus": {"url": "http://127.0.0.1:9"},
        "allowed_targets": ["user-service", "redis"], "endpoints": endpoints})


def journal_fault(place: Endpoint, *, applied: bool = True, reverted: bool = False) -> Handle:
    """Journal a plan and one fault of ``RUN`` at ``place``: intended, applied, reverted."""
    labels = Labels(run=RUN, scenario="latency-ladder", environment="demo", step=1)
    handle = Handle(driver=place.driver, id="r-1", endpoint=endpoint_key(place), labels=labels,
                    fault="latency 30ms", expires_at=time.time() + 60)
    with Journal(journal_path(RUN)) as journal:
        journal.write(PlanEvent(run=RUN, scenario="latency-ladder", environment="demo",
                                requester="tester", max_severity=1, steps=[]))
        journal.write(FaultIntentEvent(driver=place.driver, endpoint=endpoint_key(place),
                                       labels=labels, fault=handle.fault,
                                       expires_at=handle.expires_at))
        if applied:
            journal.write(FaultAppliedEvent(handle=handle))
        if reverted:
            journal.write(FaultRevertedEvent(driver=place.driver, endpoint=handle.endpoint,
                                             labels=labels, handle=handle))
    return handle


def failures() -> list[RevertFailedEvent]:
    """The revert failures journaled for ``RUN``."""
    return [e for e in read_journal(journal_path(RUN)) if isinstance(e, RevertFailedEvent)]


def test_applied_fault_whose_driver_cannot_be_built_fails_the_rollback() -> None:
    """The proxy's token is unset: its fault cannot be reverted, and the outcome says so."""
    place = environment()
    handle = journal_fault(place.endpoints[0])
    result = revert_run(RUN, place)
    assert not result.clean
    assert result.unchecked == (Unchecked("proxy", handle.endpoint, result.unchecked[0].why),)
    assert f"env:{TOKEN}" in result.unchecked[0].why
    (line,) = result.failed
    assert line.startswith(f"latency 30ms at {handle.endpoint}: no driver for it") and TOKEN in line
    (event,) = failures()
    assert event.handle == handle and event.endpoint == handle.endpoint and TOKEN in event.error
    assert decide(None, None, result).outcome == "rollback_failed"
    assert unclean_rollbacks() == (result,)


def test_reverted_fault_still_needs_its_place_checked() -> None:
    """The journal says reverted, but nothing can confirm the place is clean now."""
    place = environment()
    handle = journal_fault(place.endpoints[0], reverted=True)
    result = revert_run(RUN, place)
    assert not result.clean
    (line,) = result.failed
    assert line.startswith(f"proxy at {handle.endpoint} could not be checked: ")
    (event,) = failures()
    assert event.handle is None and event.endpoint == handle.endpoint
    assert event.error.startswith("could not be checked: ") and TOKEN in event.error


def test_intent_at_an_unchecked_place_is_not_written_off() -> None:
    """An apply that never returned is not journaled as reverted when its place is unchecked."""
    place = environment()
    journal_fault(place.endpoints[0], applied=False)
    result = revert_run(RUN, place)
    assert not result.clean
    events = read_journal(journal_path(RUN))
    assert not [e for e in events if isinstance(e, FaultRevertedEvent)]
    assert [e.endpoint for e in failures()] == [endpoint_key(place.endpoints[0])]


def test_without_a_journal_every_place_of_the_environment_counts() -> None:
    """With no journal here, any place may hold the run's faults: each must be checked."""
    result = revert_run(RUN, environment())
    assert not result.clean
    assert [u.driver for u in result.unchecked] == ["proxy"]


def test_a_place_the_run_never_faulted_does_not_count() -> None:
    """The run faulted only the stress endpoint, which is checked: the proxy does not matter."""
    place = environment(stress=True)
    journal_fault(place.endpoints[1], reverted=True)
    result = revert_run(RUN, place)
    assert result.clean, result
    assert failures() == []


def test_unreachable_driver_is_a_place_not_checked() -> None:
    """A proxy driver that builds but whose admin API does not answer cannot list or verify."""
    place = environment()
    handle = journal_fault(place.endpoints[0], reverted=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TOKEN, "secret-token")
        result = revert_run(RUN, place)
    assert not result.clean
    assert [u.endpoint for u in result.unchecked] == [handle.endpoint]
    assert "cannot list its faults" in result.unchecked[0].why
    (event,) = failures()
    assert "cannot list its faults" in event.error


def test_a_factory_raising_any_exception_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver factory failing with a foreign exception still leaves the run not clean."""
    monkeypatch.setitem(DRIVERS, "proxy", f"{__name__}:exploding")
    place = environment()
    journal_fault(place.endpoints[0], reverted=True)
    result = revert_run(RUN, place)
    assert not result.clean
    assert result.unchecked[0].why == "RuntimeError: no client library for user-service"
    assert "RuntimeError: no client library" in failures()[0].error


def test_environment_sweep_fails_closed() -> None:
    """``chaosctl stop`` and the sweep: an endpoint without a driver is a problem."""
    place = environment(stress=True)
    result = revert_environment(place)
    assert not result.clean
    assert [(u.driver, u.endpoint) for u in result.unchecked] == [
        ("proxy", endpoint_key(place.endpoints[0]))]
    assert TOKEN in result.failed[0]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_exit_codes(signum: int, code: int) -> None:
    """A stopped ``chaosctl start`` exits 128 + the signal; a failed rollback's 5 wins."""
    assert _stopped(signum) == code
    place = environment()
    journal_fault(place.endpoints[0])
    revert_run(RUN, place)
    assert _stopped(signum) == 5


def test_a_stop_signal_is_named_and_a_failed_rollback_still_wins() -> None:
    """A run a signal cancelled says which and where; its failed rollback outranks that."""
    by = "signal SIGTERM during step 2"
    clean = rollback.RollbackResult(run=RUN, reverted=("latency 30ms at proxy",))
    assert decide(None, None, clean, cancelled=True, by=by).summary == (
        "cancelled by signal SIGTERM during step 2; every fault was reverted")
    assert decide(None, None, None, cancelled=True, by=by).summary.endswith(
        "nothing was injected")
    failed = rollback.RollbackResult(run=RUN, failed=("latency 30ms at proxy: gone",))
    ended = decide(None, None, failed, cancelled=True, by=by)
    assert ended.outcome == "rollback_failed"
    assert ended.summary == ("cancelled by signal SIGTERM during step 2; rollback failed, "
                             "faults may remain: latency 30ms at proxy: gone")
