"""The catalog's ``cache-errors-in-process`` on the demo: the cache fails from inside
user-service, at the fault point its Redis client passes, and the fallback to PostgreSQL holds.

The same dependency has a TCP proxy in front of it (``cache-outage`` faults it there); this
run must reach the cache only through the point: the proxy counts no fault, Redis itself
keeps answering, and the rules file is empty once the run has rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.demo.parts import point_rules_file
from gameday.drivers.transport import TransportDriver
from gameday.journal import Event, FaultAppliedEvent, HoldEndedEvent, PlanEvent, SignalsJudgedEvent
from tests.demo_stack import DemoStack
from tests.flows.conftest import Bench, dump, repo_scenarios

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCENARIO = "cache-errors-in-process"
DWELL = "8s"


@pytest.fixture
def points_bench(demo_stack: DemoStack, tmp_path: Path) -> Iterator[Bench]:
    """The catalog's scenario as the repo has it, dwells shortened."""
    repo_scenarios(tmp_path, "profiles.yaml", (SCENARIO,), DWELL,
                   rollback={"recovery": {"timeout": "30s", "tolerance_percent": 100}})
    demo_stack.clear_faults()
    demo_stack.wait_calm()
    yield Bench(demo_stack, tmp_path)
    demo_stack.clear_faults()


def _cache_errors(events: list[Event], severity: int) -> float | None:
    for event in events:
        if isinstance(event, SignalsJudgedEvent) and event.severity == severity:
            for result in event.results:
                if result.name == "cache_errors_per_second":
                    return result.observed
    return None


def test_cache_errors_in_process_fall_back_to_the_database(points_bench: Bench) -> None:
    stack = points_bench.stack
    proxy_before = points_bench.injected("redis")
    code, out = points_bench.run(SCENARIO, timeout=240)
    (events,) = points_bench.journals().values()
    assert code == 0, out + dump(events)
    run = next(e.run for e in events if isinstance(e, PlanEvent))
    held = {e.severity: e.result.held for e in events if isinstance(e, HoldEndedEvent)}
    assert held == {1: True, 2: True, 3: True}, dump(events)
    applied = [e for e in events if isinstance(e, FaultAppliedEvent)]
    assert applied and all(e.handle.driver == "transport" for e in applied), dump(events)
    assert {e.handle.extra.get("points") for e in applied} == {"redis"}
    # Each step raised cache errors, more as the share grew to every call.
    errors = [_cache_errors(events, severity) for severity in (1, 2, 3)]
    assert all(value is not None and value >= 1 for value in errors), errors
    # user-service's fault point counted them, labelled with the run; the TCP proxy none.
    injected = stack.query(f'sum(chaos_faults_injected_total{{point="redis", run="{run}"}})')
    assert injected is not None and injected >= 10, injected
    assert points_bench.injected("redis") == proxy_before
    # Rolled back: no rule of the run is left in the file the point reads.
    assert TransportDriver(point_rules_file(Path(stack.state_dir))).active(run) == []
