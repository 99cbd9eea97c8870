"""The weekly suite and error budgets, against a real Prometheus scraping a local exporter:
a scenario whose budget is (nearly) spent, or whose SLO query returns nothing, is skipped with
the reason and the budget left; the suite's summary and notice name it."""

from __future__ import annotations

import asyncio
from typing import Any

from gameday.models import Environment, Scenario
from gameday.protocol.outcome import Outcome
from gameday.protocol.suite import (
    Readiness,
    SuiteResult,
    SuiteSummary,
    budget_problem,
    plan_suite,
    readiness,
)
from gameday.protocol.summary import RunSummary
from tests.guards.conftest import PromStack, Target
from tests.guards.conftest import prom as prom
from tests.guards.conftest import target as target
from tests.protocol.test_checks import NOW, environment, scenario


def slo(name: str, **changes: Any) -> dict[str, Any]:
    """An SLO over two gauges of the test exporter, ``{name}_good`` and ``{name}_total``."""
    def gauge(which: str) -> str:
        return f'sum(max_over_time(gameday_test_value{{name="{name}_{which}"}}[{{range}}]))'

    return {"good": gauge("good"), "total": gauge("total"), "objective": 0.99,
            "window": "1h", "min_budget_left": 0.25} | changes


def served(prom: PromStack, target: Target, name: str, good: float, total: float) -> None:
    """Serve the SLO's counts and wait until Prometheus has scraped them."""
    prom.set_and_wait(target, f"{name}_good", good)
    prom.set_and_wait(target, f"{name}_total", total)


def place(prom: PromStack, **changes: Any) -> Environment:
    return environment(prometheus={"url": prom.url}, **changes)


def problem(item: Scenario, where: Environment) -> tuple[str | None, float | None]:
    return asyncio.run(budget_problem(item, where))


def test_a_spent_budget_is_a_reason_to_skip_with_the_share_left(prom: PromStack,
                                                                target: Target) -> None:
    """997 good of 1000 against 0.99 spends 30% of the budget: 70% left, 75% needed."""
    served(prom, target, "spent", 997, 1000)
    reason, left = problem(scenario(slo=slo("spent", min_budget_left=0.75)), place(prom))
    assert left is not None and abs(left - 0.7) < 1e-9
    assert reason == ("error budget spent: 70.0% left of the 0.99 objective, needs at least "
                      "75%")


def test_enough_budget_is_no_reason_but_is_measured(prom: PromStack, target: Target) -> None:
    """999 good of 1000 leaves 90% of the budget: the scenario may run."""
    served(prom, target, "plenty", 999, 1000)
    reason, left = problem(scenario(slo=slo("plenty")), place(prom))
    assert reason is None
    assert left is not None and abs(left - 0.9) < 1e-9


def test_no_data_is_a_reason_to_skip(prom: PromStack, target: Target) -> None:
    """An SLO over series Prometheus does not have gives nothing: the gate cannot see."""
    reason, left = problem(scenario(slo=slo("never_exported")), place(prom))
    assert left is None
    assert reason is not None and "the SLO query returned nothing" in reason
    assert 'gameday_test_value{name="never_exported_good"}[3600s]' in reason


def test_no_traffic_in_the_window_is_no_data(prom: PromStack, target: Target) -> None:
    """0 good of 0 is 0/0: not a budget left of NaN, but nothing to go by."""
    served(prom, target, "idle", 0, 0)
    reason, left = problem(scenario(slo=slo("idle")), place(prom))
    assert left is None and reason is not None and "returned nothing" in reason


def test_the_environment_slo_applies_and_a_scenario_slo_replaces_it(
        prom: PromStack, target: Target) -> None:
    """Like a run's request: the scenario's SLO, else the environment's."""
    served(prom, target, "env_spent", 990, 1000)
    served(prom, target, "own_fine", 999, 1000)
    where = place(prom, slo=slo("env_spent"))
    reason, left = problem(scenario(), where)
    assert left is not None and abs(left) < 1e-9
    assert reason is not None and reason.startswith("error budget spent: 0.0% left")
    assert problem(scenario(slo=slo("own_fine")), where)[0] is None


def test_without_an_slo_nothing_is_asked() -> None:
    """No SLO: no query (this environment's Prometheus is a closed port)."""
    assert problem(scenario(), environment()) == (None, None)


def test_an_unreachable_prometheus_is_a_reason_to_skip() -> None:
    """A query that fails is an unknown budget, with the error."""
    reason, left = problem(scenario(slo=slo("any")), environment())
    assert left is None
    assert reason is not None and reason.startswith("error budget unknown (the query failed:")


def test_the_suite_skips_budget_problems_and_names_them(prom: PromStack,
                                                        target: Target) -> None:
    """Planned, checked and summed up as the weekly flow does: the spent and the unknown
    budgets are skipped with their reasons and budget left; the one with budget runs."""
    served(prom, target, "suite_spent", 990, 1000)
    served(prom, target, "suite_fine", 998, 1000)
    chosen = [scenario(name="auth-latency", slo=slo("suite_fine")),
              scenario(name="auth-aborts", slo=slo("suite_spent")),
              scenario(name="auth-blind", slo=slo("suite_missing")),
              scenario(name="auth-monday", slo=slo("suite_fine"),
                       trigger={"window": {"days": ["mon"]}})]
    where = place(prom)
    plan = plan_suite(chosen, where, NOW)
    checked = [asyncio.run(readiness(item, where)) for item in plan]
    fine, spent, blind, monday = checked
    assert fine.skip is None and fine.budget_left is not None
    assert abs(fine.budget_left - 0.8) < 1e-9
    assert spent.budget_skip and spent.budget_left is not None and abs(spent.budget_left) < 1e-9
    assert spent.skip is not None and spent.skip.startswith("error budget spent: 0.0% left")
    assert blind.budget_skip and blind.budget_left is None
    assert blind.skip is not None and "returned nothing" in blind.skip
    # Outside its window: skipped for that, and its budget is not even measured.
    assert monday == Readiness(plan[3].skip)
    assert monday.skip is not None and "outside its window" in monday.skip

    passed = RunSummary.ended("r1", "auth-latency", "demo",
                              Outcome("passed", 2, None, "held 2 of 2"))
    results = tuple(SuiteResult.ran(item, passed, ready.budget_left) if ready.skip is None
                    else SuiteResult.skipped(item, ready.skip, ready.budget_left,
                                             ready.budget_skip)
                    for item, ready in zip(plan, checked, strict=True))
    done = SuiteSummary(environment="demo", suite="weekly", results=results)
    assert done.summary.startswith(
        "weekly suite in demo: 1 ran, 3 skipped; auth-latency passed, auth-aborts skipped, "
        "auth-blind skipped, auth-monday skipped; auth-aborts skipped: error budget spent: "
        "0.0% left of the 0.99 objective, needs at least 25%; auth-blind skipped: error "
        "budget unknown (the SLO query returned nothing)")
    assert "auth-monday skipped: outside" not in done.summary
    notice = done.notice("suite-run")
    assert (notice.run, notice.ran, notice.skipped, notice.level) == ("suite-run", 1, 3, "info")
    rows = {row.scenario: row for row in notice.rows}
    assert rows["auth-aborts"].note == spent.skip and rows["auth-aborts"].budget_left == \
        spent.budget_left
    assert rows["auth-latency"].outcome == "passed" and rows["auth-latency"].budget_left == \
        fine.budget_left
