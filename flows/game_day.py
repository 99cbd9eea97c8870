"""The game-day flow: one scenario as the safe-run protocol.

prepare → escalate severity → observe → rollback → learn. Rollback runs on every exit path:
in ``finally`` (end, guard abort, exception, SIGTERM, Ctrl-C) and in the crash and
cancellation hooks, which revert from the journal and the drivers because they may run in
another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import FlowRun, State
from prefect.exceptions import MissingContextError
from prefect.runtime import flow_run as current_run
from prefect.states import Failed

from gameday.environments import load_environment
from gameday.errors import RefusedError
from gameday.journal import Journal, NoteEvent, RunEndedEvent, read_journal
from gameday.load import load_default, load_mission
from gameday.paths import journal_path
from gameday.protocol.checks import Request
from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation
from gameday.protocol.learn import write_postmortem
from gameday.protocol.observe import Observation
from gameday.protocol.outcome import Outcome, decide
from gameday.protocol.prepare import open_run
from gameday.protocol.rollback import RollbackResult
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


@flow(name="game-day", on_crashed=[revert_after_crash], on_cancellation=[revert_after_crash])
async def game_day(scenario: str, environment: str = "demo", max_severity: int | None = None,
                   duration: float | None = None, dry_run: bool = False,
                   requester: str | None = None, allow_production: bool = False,
                   lock_wait: float = 0.0, mission: str | None = None
                   ) -> dict[str, Any] | State[Any]:
    """Run one chaos scenario as the safe-run protocol.

    Args:
        scenario: Name of a scenario in the catalog.
        environment: Environment to run in (a name from the catalog or the demo's state).
        max_severity: Stop the ladder at this step (default: the top of the ladder).
        duration: Cap on the dwells in seconds (default: the scenario's max_duration).
        dry_run: Run prepare (checks, preflight, baseline), show the plan, inject nothing.
        requester: Who asks for this game day (checked against the environment's requesters).
        allow_production: Required to run in an environment marked production.
        lock_wait: Seconds to wait for another game day in the environment to end.
        mission: A mission (name in the catalog, or a file) this run carries out.
    """
    run = str(current_run.id or uuid.uuid4())
    catalog = load_default()
    chosen = catalog.scenario(scenario)
    planned = load_mission(mission, catalog) if mission else None
    request = Request(chosen, load_environment(environment), requester, max_severity, duration,
                      allow_production, planned)
    try:
        ctx = open_run(run, request, catalog.signals)
    except RefusedError as exc:
        return _refused(run, str(exc))
    ctx.progress = _progress_printer()
    try:
        prepared = await prepare_phase(ctx, lock_wait=lock_wait, dry_run=dry_run)
        if isinstance(prepared, Refusal):
            _end(ctx, Outcome("refused", None, None, prepared.reason))
            return _refused(run, prepared.reason)
        if dry_run:
            return _dry_run_summary(ctx)
        return await _run_ladder(ctx)
    finally:
        ctx.close()


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
        if escalation is None:  # leaving by an exception: record the end now, synchronously
            _end(ctx, decide(None, None, rollback, error=error, cancelled=cancelled))
            write_postmortem(ctx.run, runbook=ctx.scenario.runbook,
                             description=ctx.scenario.description, run_url=_run_url())
    recovered, seconds = await recover_phase(ctx)
    ctx.notify("recovery", f"recovered in {seconds:.1f}s" if recovered
               else "signals did not return to the baseline in time",
               level="info" if recovered else "warning")
    observation: Observation | None = await observe_phase(ctx, escalation)
    outcome = decide(escalation, observation, rollback)
    _end(ctx, outcome)
    report = learn_phase(ctx.run, ctx.scenario.runbook, ctx.scenario.description, _run_url())
    ctx.notify("summary", f"{outcome.summary}. Postmortem: {report}",
               level="info" if outcome.outcome == "passed" else "warning")
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
                   f"{len(rollback.reverted)} fault(s) reverted, none active")
    else:
        ctx.notify("rollback_failed", "ROLLBACK FAILED, faults may remain: "
                   + "; ".join([*rollback.failed, *rollback.remaining]), level="critical")


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
