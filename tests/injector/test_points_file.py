"""Fault points on a real rules file: the transport driver's, changes seen within RECHECK, a
missing, invalid or hostile file that never breaks a call (counted), and leases that end a
rule at its run's deadline with no change to the file, cutting a delay short unless renewed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gameday.drivers.transport import TransportDriver
from gameday.faults import ErrorFault
from gameday.injector import rules_file
from gameday.injector.points import RECHECK, PointRules, configure_points, fault_point
from gameday.models import Target
from gameday.records import FaultSpec, Labels
from tests.injector.test_points import (
    LABELS,
    SLOW,
    make_rules,
    no_process_rules,
    point_input,
    timed,
)
from tests.injector.test_transport import errors_counted, replace, settled, write_rules

__all__ = ["make_rules", "no_process_rules"]  # fixtures, shared with test_points

Make = Callable[..., PointRules]


@pytest.fixture(autouse=True)
def patient_watcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call that saw the file change waits for the watcher up to 10 s, not 50 ms: on two
    busy cores a call that gave up would inject nothing and look like a missed rule."""
    monkeypatch.setattr(rules_file, "WAKE", 10.0)


def raises(point: str, rules: PointRules) -> type[BaseException] | None:
    """What a call at ``point`` raised (None: it ran)."""
    try:
        assert fault_point(point, rules=rules)(lambda: "made")() == "made"
    except (TimeoutError, ConnectionError) as exc:
        return type(exc)
    return None


def after_recheck() -> None:
    """Let RECHECK pass, so the next call looks at the file's stat."""
    time.sleep(RECHECK * 5)


def test_a_point_acts_on_the_rules_the_transport_driver_writes(tmp_path: Path,
                                                               make_rules: Make) -> None:
    path = tmp_path / "checkout-rules.json"
    driver = TransportDriver(path)
    spec = FaultSpec(fault=ErrorFault(error="timeout"), labels=Labels(**LABELS),
                     target=Target(service="checkout", dependency="redis", point="redis"))
    handle = driver.apply(spec, ttl=60)
    rules = make_rules(rules_file=path, target="checkout/redis")
    assert raises("redis", rules) is TimeoutError
    assert raises("pg", rules) is None
    driver.revert(handle)  # the rule deleted from the file
    after_recheck()
    assert raises("redis", rules) is None
    assert rules.source.last_error is None and rules.active_rules() == []


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_rules_added_and_deleted_are_seen_once_recheck_passed(tmp_path: Path, make_rules: Make,
                                                              suffix: str) -> None:
    path = tmp_path / f"rules{suffix}"
    rules = make_rules(rules_file=path)  # no file yet: nothing injected, nothing counted
    rules.source.settle = 10.0  # YAML is read in ms; a busy machine must not flake this
    assert raises("redis", rules) is None and rules.source.last_error is None
    write_rules(path, [point_input("error", error="connection")], 0)
    after_recheck()
    assert raises("redis", rules) is ConnectionError
    write_rules(path, [point_input("error", error="timeout")], 1)
    after_recheck()
    assert raises("redis", rules) is TimeoutError
    write_rules(path, [], 2)
    after_recheck()
    assert raises("redis", rules) is None
    path.unlink()
    write_rules(path.with_name("x.json"), [], 3)  # another file: not this one's business
    after_recheck()
    assert raises("redis", rules) is None


def test_recheck_is_how_often_the_file_is_looked_at(tmp_path: Path, make_rules: Make) -> None:
    path = tmp_path / "rules.json"
    write_rules(path, [point_input("error", error="timeout")], 0)
    hourly, always = make_rules(rules_file=path, recheck=3600), make_rules(rules_file=path,
                                                                         recheck=0)
    assert raises("redis", hourly) is raises("redis", always) is TimeoutError
    write_rules(path, [], 1)
    assert raises("redis", always) is None  # looked at on this very call
    assert raises("redis", hourly) is TimeoutError  # not looked at again within the hour


def test_a_ttl_in_the_file_ends_the_rule_with_no_change_to_it(tmp_path: Path,
                                                              make_rules: Make) -> None:
    """The ttl counts from the file's modification time, by the rules' clock."""
    path, now = tmp_path / "rules.json", [0.0]
    write_rules(path, [point_input("error", error="timeout", ttl=0.5)], 0)
    written = path.stat().st_mtime
    rules = make_rules(rules_file=path, clock=lambda: now[0])
    now[0] = written + 0.49
    assert raises("redis", rules) is TimeoutError
    now[0] = written + 0.5
    assert raises("redis", rules) is None


# -- bad files -----------------------------------------------------------------------------------

GOOD = [point_input("error", error="timeout")]
BAD: list[tuple[str, str, bytes, str]] = [
    ("bad-json", "rules.json", b'{"rules": [', "syntax"),
    ("bad-yaml", "rules.yaml", b"rules: [a, b\n", "syntax"),
    ("too-large", "rules.json", json.dumps({"rules": GOOD}).encode() + b" " * (2 << 20),
     "too_large"),
    ("not-utf8", "rules.json", b'{"rules": [], "x": "\xff"}', "not_utf8"),
    ("a-list", "rules.json", b"[1, 2]", "invalid"),
    ("rules-not-a-list", "rules.json", b'{"rules": {}}', "invalid"),
    ("unknown-key", "rules.json", b'{"rules": [], "points": ["redis"]}', "invalid"),
    ("bad-point-name", "rules.json",
     json.dumps({"rules": [{**GOOD[0], "points": ["no spaces"]}]}).encode(), "invalid"),
    ("error-without-points", "rules.json",
     json.dumps({"rules": [{**GOOD[0], "points": []}]}).encode(), "invalid"),
    ("abort-at-a-point", "rules.json",
     json.dumps({"rules": [{**GOOD[0], "fault": {"kind": "abort"}}]}).encode(), "invalid"),
    ("bad-error-name", "rules.json",
     json.dumps({"rules": [{**GOOD[0], "fault": {"kind": "error", "error": "9"}}]}).encode(),
     "invalid"),
]


@pytest.mark.parametrize(("file", "data", "reason"), [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_a_bad_file_injects_nothing_and_is_counted(tmp_path: Path, make_rules: Make,
                                                   file: str, data: bytes, reason: str) -> None:
    """A file replaced by a bad one drops the rules before it too; counted once per version."""
    path = tmp_path / file
    replace(path, json.dumps({"rules": GOOD}).encode(), 0)
    rules = make_rules(rules_file=path)
    assert raises("redis", rules) is TimeoutError
    before = errors_counted(reason)
    replace(path, data, 1)
    after_recheck()
    assert raises("redis", rules) is None
    settled(lambda: rules.source.last_error is not None, "last_error")
    assert [raises("redis", rules) for _ in range(5)] == [None] * 5
    assert errors_counted(reason) == before + 1, rules.source.last_error


def test_a_bad_file_from_the_start_never_breaks_a_call(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_bytes(b'{"rules": [{"id": 1}]}')
    before = errors_counted("invalid")
    configure_points(path)

    @fault_point("redis")
    async def get() -> str:
        return "value"

    assert asyncio.run(get()) == "value"
    assert errors_counted("invalid") == before + 1


# -- leases --------------------------------------------------------------------------------------


def leased(kind: str = "error", lease: float | None = 3.0, run: str = str(LABELS["run"]),
           points: tuple[str, ...] = ("redis",), expires_at: float = 2000.0,
           **fault: Any) -> dict[str, Any]:
    """A rule input for ``points``, leased unless ``lease`` is None."""
    fields: dict[str, Any] = {"labels": {**LABELS, "run": run}, "expires_at": expires_at,
                              **({"error": "timeout"} if kind == "error" else {}), **fault}
    item = point_input(kind, points, **fields)
    return {**item, "lease": lease} if lease is not None else item


def test_a_lease_ends_its_rule_at_the_deadline_with_no_change_to_the_file(
        tmp_path: Path, make_rules: Make) -> None:
    path, now = tmp_path / "rules.json", [1000.0]
    write_rules(path, [leased(), leased(lease=None, points=("pg",))], 0,
                leases={str(LABELS["run"]): 1010.0})
    rules = make_rules(rules_file=path, clock=lambda: now[0])
    assert raises("redis", rules) is TimeoutError
    before = path.stat()
    now[0] = 1009.999
    assert raises("redis", rules) is TimeoutError
    now[0] = 1010.0
    assert raises("redis", rules) is None  # at once, by the clock
    assert raises("pg", rules) is TimeoutError  # not leased: not affected
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == (before.st_mtime_ns, before.st_ino)


def test_a_real_lease_deadline_passing_stops_the_fault(tmp_path: Path, make_rules: Make) -> None:
    path, later = tmp_path / "rules.json", time.time() + 60
    deadline = time.time() + 1.0
    write_rules(path, [leased(expires_at=later)], 0, leases={str(LABELS["run"]): deadline})
    rules = make_rules(rules_file=path)
    assert raises("redis", rules) is TimeoutError
    time.sleep(max(0.0, deadline - time.time()) + 0.05)
    assert raises("redis", rules) is None
    assert rules.active_rules() == [] and rules.source.last_error is None


def test_a_leased_rule_whose_run_has_no_deadline_has_lapsed(tmp_path: Path,
                                                            make_rules: Make) -> None:
    path, later = tmp_path / "rules.json", time.time() + 60
    write_rules(path, [leased(run="run-other", expires_at=later),
                       leased(lease=None, points=("pg",), expires_at=later)], 0,
                leases={str(LABELS["run"]): later})
    rules = make_rules(rules_file=path)
    assert raises("redis", rules) is None
    assert raises("pg", rules) is TimeoutError
    assert rules.source.last_error is None


def test_a_delay_ends_at_the_lease_deadline(tmp_path: Path, make_rules: Make) -> None:
    path, later, deadline = tmp_path / "rules.json", time.time() + 60, time.time() + 0.5
    write_rules(path, [leased("latency", ms=30_000, expires_at=later)], 0,
                leases={str(LABELS["run"]): deadline})
    point = fault_point("redis", rules=make_rules(rules_file=path))
    left = deadline - time.time()
    took, _ = timed(point.check)
    assert left - 0.005 <= took < SLOW


def test_a_delay_goes_on_while_its_lease_is_renewed(tmp_path: Path, make_rules: Make) -> None:
    """The run renews while the call waits: the delay is not cut at the old deadline.

    The rules' clock starts at 1000 when the call decides, so the old deadline is 1 s into
    the 1.5 s delay however late the call began; the run renews as soon as it has decided."""
    path, run = tmp_path / "rules.json", str(LABELS["run"])
    rule = leased("latency", ms=1500, expires_at=5000.0)
    write_rules(path, [rule], 0, leases={run: 1001.0})
    decided, began = threading.Event(), []

    def clock() -> float:
        if not began:
            began.append(time.monotonic())
            decided.set()
        return 1000.0 + time.monotonic() - began[0]

    rules = make_rules(rules_file=path, clock=clock)

    def renew() -> None:
        decided.wait(SLOW)
        write_rules(path, [rule], 1, leases={run: 1030.0})
        rules.source.reload()

    renewer = threading.Thread(target=renew)
    renewer.start()
    took, _ = timed(fault_point("redis", rules=rules).check)
    renewer.join()
    assert 1.5 - 0.005 <= took < SLOW
