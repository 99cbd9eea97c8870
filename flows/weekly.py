"""The weekly resilience run: the ``weekly`` suite's scenarios, one after another.

Each scenario runs as a ``game-day`` subflow with its own prepare and rollback. A scheduled run
has no second person, so nothing reaches the environment's sign-off severity; scenarios outside
their window or below their ``min_load`` are skipped with the reason. The first guard abort
stops the suite unless told to continue. One table artifact sums it up.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.states import Failed

from blocks import load_environment
from flows.game_day import game_day
from gameday.load import load_default
from gameday.protocol.suite import SuiteItem, min_load_problem, plan_suite, suite_scenarios


@flow(name="weekly-resilience")
async def weekly_resilience(environment: str = "demo", suite: str = "weekly",
                            continue_after_abort: bool = False,
                            run_below_sign_off: bool = False,
                            requester: str = "weekly-schedule") -> Any:
    """Run every scenario of a suite in one environment, one after another.

    Args:
        environment: Environment to run in (a name, or an environment file).
        suite: Catalog suite whose scenarios run, in catalog order.
        continue_after_abort: Go on with the next scenario after a guard aborted one.
        run_below_sign_off: Run scenarios whose ladder reaches the sign-off severity up to
            the step below it, instead of skipping them.
        requester: Who the runs are recorded as requested by.
    """
    logger = get_run_logger()
    place = load_environment(environment)
    scenarios = suite_scenarios(load_default().scenarios.values(), suite)
    if not scenarios:
        return Failed(message=f"no scenario is in suite {suite!r}")
    plan = plan_suite(scenarios, place, datetime.now(UTC), run_below_sign_off)
    rows: list[dict[str, Any]] = []
    stopped_by: str | None = None
    for item in plan:
        skip = item.skip
        if stopped_by is not None:
            skip = f"not run: {stopped_by} was aborted by a guard"
        elif skip is None:
            skip = await min_load_problem(item.scenario, place)
        if skip is not None:
            logger.info("skipping %s: %s", item.scenario.name, skip)
            rows.append(_row(item, "skipped", skip))
            continue
        result = await _run(item, environment, requester)
        rows.append(_row(item, str(result.get("outcome", "failed")),
                         str(result.get("summary", "")), result))
        if result.get("outcome") == "aborted" and not continue_after_abort:
            stopped_by = item.scenario.name
    ran = [r for r in rows if r["outcome"] != "skipped"]
    summary = (f"{suite} suite in {place.name}: {len(ran)} ran, "
               f"{len(rows) - len(ran)} skipped; "
               + ", ".join(f"{r['scenario']} {r['outcome']}" for r in rows))
    await acreate_table_artifact(table=rows, key=f"weekly-resilience-{place.name}",
                                 description=summary)
    logger.info(summary)
    return {"environment": place.name, "suite": suite, "results": rows, "summary": summary}


async def _run(item: SuiteItem, environment: str, requester: str) -> dict[str, Any]:
    """One scenario as a game-day subflow; its result, or what its failure says."""
    state = await game_day(scenario=item.scenario.name, environment=environment,
                           max_severity=item.max_severity, requester=requester,
                           return_state=True)
    value = state.result(raise_on_failure=False)
    if asyncio.iscoroutine(value):
        value = await value
    if isinstance(value, dict):
        return value
    return {"outcome": "failed", "summary": f"{type(value).__name__}: {value}"}


def _row(item: SuiteItem, outcome: str, note: str,
         result: dict[str, Any] | None = None) -> dict[str, Any]:
    result = result or {}
    return {"scenario": item.scenario.name, "outcome": outcome,
            "max_severity": item.max_severity, "highest_held": result.get("highest_held"),
            "first_broken": result.get("first_broken"), "note": note,
            "run": result.get("run"), "postmortem": result.get("postmortem")}
