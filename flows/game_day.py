"""The game-day flow: one scenario as the safe-run protocol.

prepare → escalate severity → observe → rollback → learn. Rollback runs on every exit path:
in ``finally`` (end, guard abort, exception, SIGTERM, Ctrl-C) and in the crash and
cancellation hooks, which revert from the journal and the drivers because they may run in
another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import FlowRun, State
from prefect.exceptions import MissingContextError
from prefect.runtime import deployment as current_deployment
from prefect.runtime import flow_run as current_run
from prefect.states import Failed

from gameday.environments import load_environment
from gameday.errors import GameDayError, RefusedError
from gameday.journal import Journal, NoteEvent, RunEndedEvent, read_journal
from gameday.load import load_default, load_mission
from gameday.notify.pushgateway import RunLabels, RunState, finish_run
from gameday.paths import journal_path
from gameday.protocol.checks import Request
from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation
from gameday.protocol.learn import write_postmortem
from gameday.protocol.observe import Observation
from gameday.protocol.outcome import Outcome, decide
from gameday.protocol.prepare import open_run
from gameday.protocol.rollback import RollbackResult
from gameday.protocol.signoff import await_sign_off, needs_sign_off
from orchestration.signoff import pause_for_sign_off
from tasks.escalate import escalate_phase
from tasks.learn import learn_phase
from tasks.observe import observe_phase
from tasks.prepare import Refusal, prepare_phase
from tasks.rollback import recover_phase, revert_run


def revert_after_crash(flow: Any, flow_run: FlowRun, state: State[Any]) -> None:
    """Crash/cancel hook: revert the run's faults from its journal and the drivers.

    Its parameters must be named exactly ``(flow, flow_run, state)``: a worker passes them by
    keyword. It may run in another process, so it reads nothing from memory.
    """
    run = str(flow_run.id)
    environment = load_environment(str(flow_run.parameters.get("environment", "demo")))
    result = revert_run(run, environment)
    _free_slot(run)
    if environment.pushgateway_url:  # the run's own process cannot end its metrics any more
        with contextlib.suppress(GameDayError):
            finish_run(environment.pushgateway_url,
                       RunLabels(run, str(flow_run.parameters.get("scenario", "")),
                                 environment.name), RunState(rollback_failed=int(not result.clean)))
    path = journal_path(run)
    if not path.exists():
        return
    events = read_journal(path)
    if not any(isinstance(e, RunEndedEvent) for e in events):
        cancelled = state.is_cancelled() or state.is_cancelling()
        outcome = decide(None, None, result, error=None if cancelled else state.name,
                         cancelled=cancelled)
        with Journal(path) as journal:
            journal.write(RunEndedEvent(outcome=outcome.outcome, summary=outcome.summary))
        write_postmortem(run)


def _scenario_names() -> Any:
    """The catalog's scenario names as an enum, so the UI offers them and the server refuses
    any other at trigger time. A catalog that does not load leaves a plain string: the hooks
    import this module, whatever state the catalog is in."""
    try:
        names = sorted(load_default().scenarios)
    except GameDayError:
        return str
    return StrEnum("ScenarioName", {name: name for name in names}) if names else str


if TYPE_CHECKING:
    ScenarioName = str
else:
    ScenarioName = _scenario_names()


@flow(name="game-day", on_crashed=[revert_after_crash], on_cancellation=[revert_after_crash])
async def game_day(scenario: ScenarioName, environment: str = "demo",
                   max_severity: int | None = None, duration: float | None = None,
                   dry_run: bool = False, requester: str | None = None,
                   allow_production: bool = False, lock_wait: float = 0.0,
                   mission: str | None = None, sign_off_timeout: int = 3600,
                   ) -> dict[str, Any] | State[Any]:
    """Run one chaos scenario as the safe-run protocol.

    Args:
        scenario: Name of a scenario in the catalog.
        environment: Environment to run in: a name (a Game Day Environment block, else the
            state folder's or the catalog's file) or the path of an environment file.
        max_severity: Stop the ladder at this step (default: the top of the ladder).
        duration: Cap on the dwells in seconds (default: the scenario's max_duration).
        dry_run: Run prepare (checks, preflight, baseline), show the plan, inject nothing.
        requester: Who asks for this game day (checked against the environment's requesters).
        allow_production: Required to run in an environment marked production.
        lock_wait: Seconds to wait for another game day in the environment to end.
        mission: A mission (name in the catalog, or a file) this run carries out.
        sign_off_timeout: Seconds to wait for a second person when the plan reaches the
            environment's sign-off severity; then the run ends with nothing injected.
    """
    run = str(current_run.id or uuid.uuid4())
    catalog = load_default()
    chosen = catalog.scenario(str(scenario))
    planned = load_mission(mission, catalog) if mission else None
    request = Request(chosen, load_environment(environment), requester, max_severity, duration,
                      allow_production, planned)
    try:
        ctx = open_run(run, request, catalog.signals)
    except RefusedError as exc:
        return _refused(run, str(exc))
    ctx.progress = _progress_printer()
    try:
        async with _one_per_environment(ctx, dry_run):
            prepared = await prepare_phase(ctx, lock_wait=lock_wait, dry_run=dry_run)
            if isinstance(prepared, Refusal):
                _end(ctx, Outcome("refused", None, None, prepared.reason))
                return _refused(run, prepared.reason)
            if dry_run:
                return _dry_run_summary(ctx)
            if needs_sign_off(ctx):
                decision = await await_sign_off(ctx, sign_off_timeout, pause_for_sign_off)
                if not decision.granted:
                    _end(ctx, Outcome("refused", None, None, decision.reason))
                    return _refused(run, decision.reason)
            return await _run_ladder(ctx)
    finally:
        ctx.close()


@contextlib.asynccontextmanager
async def _one_per_environment(ctx: RunContext, dry_run: bool) -> AsyncIterator[None]:
    """Deployment runs (and the weekly suite's) hold the environment's Prefect slot, waiting
    for it in the UI; command-line runs rely on the file lock alone, so a killed one never
    blocks the environment until a lease expires."""
    if dry_run or current_deployment.id is None:
        yield
        return
    from orchestration.slots import environment_slot

    async with environment_slot(ctx):
        yield


def _free_slot(run: str) -> None:
    """Release the slot a dead run holds, by the lease its journal records."""
    from orchestration.slots import free_slot

    with contextlib.suppress(Exception):  # Prefect unreachable: the lease expires by itself
        free_slot(run)


async def _run_ladder(ctx: RunContext) -> dict[str, Any]:
    escalation: Escalation | None = None
    rollback: RollbackResult | None = None
    error: str | None = None
    cancelled = False
    try:
        escalation = await escalate_phase(ctx)
    except (asyncio.CancelledError, KeyboardInterrupt):
        cancelled = True
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        ctx.journal.write(NoteEvent(kind="error", message=error))
        raise
    finally:
        rollback = revert_run(ctx.run, ctx.environment, journal=ctx.journal)
        _announce_rollback(ctx, rollback)
        stopped = bool(rollback.deferred_signals)  # a stop asked for while we reverted
        if escalation is None or stopped:  # leaving early: record the end now, synchronously
            _end(ctx, decide(None, None, rollback, error=error, cancelled=cancelled or stopped))
            write_postmortem(ctx.run, runbook=ctx.scenario.runbook,
                             description=ctx.scenario.description, run_url=_run_url())
        for sig in dict.fromkeys(rollback.deferred_signals):
            signal.raise_signal(sig)
    recovered, seconds = await recover_phase(ctx)
    ctx.notify("recovery", f"recovered in {seconds:.1f}s" if recovered
               else "signals did not return to the baseline in time",
               level="info" if recovered else "warning", recovered=recovered, seconds=seconds)
    observation: Observation | None = await observe_phase(ctx, escalation)
    outcome = decide(escalation, observation, rollback)
    _end(ctx, outcome)
    report = await learn_phase(ctx.run, ctx.scenario, ctx.environment, _run_url())
    ctx.notify("summary", f"{outcome.summary}. Postmortem: {report}",
               level="info" if outcome.outcome == "passed" else "warning",
               outcome=outcome.outcome, summary=outcome.summary,
               highest_held=outcome.highest_held, first_broken=outcome.first_broken,
               max_severity=max(ctx.severities, default=None), postmortem=str(report))
    return {"run": ctx.run, "outcome": outcome.outcome, "highest_held": outcome.highest_held,
            "first_broken": outcome.first_broken, "summary": outcome.summary,
            "postmortem": str(report)}


def _refused(run: str, reason: str) -> State[Any]:
    # A refusal is an answer, not a crash: a Failed state with the reason and no traceback,
    # in the UI as on the command line.
    return Failed(message=reason, data={"run": run, "outcome": "refused", "summary": reason})


def _announce_rollback(ctx: RunContext, rollback: RollbackResult) -> None:
    if rollback.clean:
        ctx.notify("rollback", f"rollback done in {rollback.seconds:.2f}s: "
                   f"{len(rollback.reverted)} fault(s) reverted, none active",
                   seconds=rollback.seconds, reverted=len(rollback.reverted))
    else:
        ctx.notify("rollback_failed", "ROLLBACK FAILED, faults may remain: "
                   + "; ".join([*rollback.failed, *rollback.remaining]), level="critical",
                   seconds=rollback.seconds, problems=[*rollback.failed, *rollback.remaining])


def _end(ctx: RunContext, outcome: Outcome) -> None:
    ctx.journal.write(RunEndedEvent(outcome=outcome.outcome, highest_held=outcome.highest_held,
                                    first_broken=outcome.first_broken, summary=outcome.summary))
    with contextlib.suppress(MissingContextError):
        get_run_logger().info("game day %s: %s", ctx.run, outcome.summary)


def _dry_run_summary(ctx: RunContext) -> dict[str, Any]:
    scenario = ctx.scenario
    plan = [{"severity": s, "fault": scenario.step_fault(s).summary(),
             "dwell": scenario.steps[s - 1].dwell, "ttl": scenario.ttl(s)}
            for s in ctx.severities]
    ctx.journal.write(RunEndedEvent(outcome="dry_run", summary="dry run: nothing injected"))
    return {"run": ctx.run, "outcome": "dry_run", "plan": plan,
            "guards": {g.name: g.query for g in ctx.guards}, "leftovers": ctx.swept,
            "summary": f"dry run: {len(plan)} step(s) planned, nothing injected"}


def _run_url() -> str | None:
    url = current_run.ui_url
    return str(url) if url else None


def _progress_printer() -> Any:
    def show(line: str) -> None:
        print(line, flush=True)

    return show
