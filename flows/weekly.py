"""The weekly resilience run: the ``weekly`` suite's scenarios, one after another.

Each scenario runs as a ``game-day`` subflow with its own prepare and rollback. A scheduled run
has no second person, so nothing reaches the environment's sign-off severity; scenarios outside
their window, below their ``min_load`` or with too little error budget left (or none known)
are skipped with the reason. The first guard abort stops the suite unless told to continue; a
stop signal (a cancel from the UI) ends it after the scenario in progress has rolled back. One
table artifact sums it up, with each breaking point and how it moved since the scenario's
previous run; one that fell is logged as a warning. The environment's chat (Slack) gets one
message at the end: each scenario's outcome or skip reason, and its budget left.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Failed

from blocks import load_environment
from flows.game_day import game_day
from gameday.load import load_default
from gameday.protocol.suite import (
    Readiness,
    SuiteItem,
    SuiteResult,
    SuiteSummary,
    plan_suite,
    readiness,
    suite_scenarios,
    tell_suite,
)
from gameday.protocol.summary import RunSummary


@flow(name="weekly-resilience")
async def weekly_resilience(environment: str = "demo", suite: str = "weekly",
                            continue_after_abort: bool = False,
                            run_below_sign_off: bool = False,
                            requester: str = "weekly-schedule") -> SuiteSummary | State[Any]:
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
    results: list[SuiteResult] = []
    stopped_by: str | None = None
    cancelled = False
    for item in plan:
        if cancelled:
            ready = Readiness("not run: the suite was cancelled")
        elif stopped_by is not None:
            ready = Readiness(f"not run: {stopped_by} was aborted by a guard")
        else:
            ready = await readiness(item, place)
        if ready.skip is not None:
            logger.info("skipping %s: %s", item.scenario.name, ready.skip)
            results.append(SuiteResult.skipped(item, ready.skip, ready.budget_left,
                                               ready.budget_skip))
            continue
        summary, cancelled = await _run(item, environment, place.name, requester)
        results.append(SuiteResult.ran(item, summary, ready.budget_left))
        if summary.outcome == "aborted" and not continue_after_abort:
            stopped_by = item.scenario.name
    done = SuiteSummary(environment=place.name, suite=suite, results=tuple(results))
    await acreate_table_artifact(table=[r.model_dump() for r in done.results],
                                 key=f"weekly-resilience-{place.name}",
                                 description=done.summary)
    if done.regressions:  # a breaking point fell: worth a look even when every run passed
        logger.warning(done.summary)
    else:
        logger.info(done.summary)
    # Off the event loop: delivery waits (briefly) for Slack.
    for problem in await asyncio.to_thread(tell_suite, done, place,
                                           str(current_run.id or uuid.uuid4())):
        logger.warning("the suite's notice: %s", problem)
    return Cancelled(message=done.summary, data=done) if cancelled else done


async def _run(item: SuiteItem, environment: str, name: str, requester: str
               ) -> tuple[RunSummary, bool]:
    """One scenario as a game-day subflow: its summary (or what its failure says), and
    whether a stop signal cancelled it."""
    state = await game_day(scenario=item.scenario.name, environment=environment,
                           max_severity=item.max_severity or 0, requester=requester,
                           return_state=True)
    value = state.result(raise_on_failure=False)
    if asyncio.iscoroutine(value):
        value = await value
    if isinstance(value, RunSummary):
        return value, state.is_cancelled()
    return RunSummary(run=str(state.state_details.flow_run_id or ""),
                      scenario=item.scenario.name, environment=name, outcome="failed",
                      summary=f"{type(value).__name__}: {value}"), state.is_cancelled()
