"""The game-day flow: one scenario as the safe-run protocol.

prepare → escalate severity → observe → rollback → learn. Rollback runs on every exit path:
in ``finally`` (end, guard abort, exception, SIGTERM, Ctrl-C) and in the crash and
cancellation hooks, which revert from the journal and the drivers because they may run in
another process.

SIGINT and SIGTERM (``chaosctl stop``, Ctrl-C, a worker cancelling the run) stop the phase in
progress (``orchestration.signals``); the flow rolls back, records "cancelled by signal …"
and returns Cancelled, so Prefect ends the run Cancelled rather than Crashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.objects import FlowRun, State
from prefect.exceptions import MissingContextError
from prefect.runtime import deployment as current_deployment
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Failed
from pydantic import Field, WithJsonSchema

from blocks import load_environment
from gameday.errors import GameDayError, RefusedError
from gameday.journal import Journal, RunEndedEvent, StepStartedEvent, read_journal
from gameday.load import load_default, load_mission
from gameday.notes import CancelledNote, ErrorNote
from gameday.notify import RecoveryNotice, RollbackFailedNotice, RollbackNotice
from gameday.paths import journal_path
from gameday.protocol.budget import measure_budget
from gameday.protocol.checks import Request
from gameday.protocol.context import RunContext
from gameday.protocol.escalate import Escalation
from gameday.protocol.incidents import settle_time
from gameday.protocol.learn import learn, summary_notice, write_postmortem
from gameday.protocol.outcome import Outcome, decide
from gameday.protocol.prepare import open_run
from gameday.protocol.reap import tell_rollback
from gameday.protocol.rollback import RollbackResult
from gameday.protocol.search import SearchRun
from gameday.protocol.signoff import await_sign_off, needs_sign_off
from gameday.protocol.summary import RunSummary, dry_run_plan
from gameday.search_events import ProbeStartedEvent
from orchestration.signals import Stop, stop_signals, stoppable
from orchestration.signoff import pause_for_sign_off
from tasks.escalate import escalate_phase
from tasks.learn import learn_phase
from tasks.observe import observe_phase
from tasks.prepare import Refusal, prepare_phase
from tasks.rollback import recover_phase, revert_run
from tasks.search import search_phase


def revert_after_crash(flow: Any, flow_run: FlowRun, state: State[Any]) -> None:
    """Crash/cancel hook: revert the run's faults from its journal and the drivers.

    Its parameters must be named exactly ``(flow, flow_run, state)``: a worker passes them by
    keyword. It may run in another process, so it reads nothing from memory.
    """
    run = str(flow_run.id)
    environment = load_environment(str(flow_run.parameters.get("environment", "demo")))
    result = revert_run(run, environment)
    _free_slot(run)
    # The run's own process cannot end its metrics, nor tell that this rollback failed.
    tell_rollback(run, environment, str(flow_run.parameters.get("scenario", "")), result)
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
        write_postmortem(run, environment=environment)


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


def _environment_schema() -> dict[str, Any]:
    """The known environments (the catalog's files, the state folder's, the demo) as the form's
    drop-down, which the server enforces for deployment runs. The value stays a string: from
    the command line (and the weekly suite's subflows) it may also be an environment file."""
    from orchestration.provision import known_environments

    try:
        names = set(known_environments())
    except (GameDayError, OSError):
        names = set()
    return {"type": "string", "enum": sorted(names | {"demo"})}


#: An environment name, offered as a drop-down in the UI.
EnvironmentName = Annotated[str, WithJsonSchema(_environment_schema())]


def _form(title: str, **constraints: Any) -> Any:
    """A run-form field: its label and constraints (the description is the docstring's).

    Prefect titles every field with the parameter's name; a title in ``json_schema_extra`` is
    applied after that, so the form reads "Highest severity" rather than "max_severity".
    """
    return Field(json_schema_extra={"title": title}, **constraints)


@flow(name="game-day", on_crashed=[revert_after_crash], on_cancellation=[revert_after_crash])
async def game_day(
    scenario: Annotated[ScenarioName, _form("Scenario")],
    environment: Annotated[EnvironmentName, _form("Environment")] = "demo",
    max_severity: Annotated[int, _form("Highest severity", ge=0)] = 0,
    duration: Annotated[float, _form("Duration cap (seconds)", ge=0)] = 0.0,
    dry_run: Annotated[bool, _form("Dry run")] = False,
    requester: Annotated[str, _form("Requested by")] = "",
    allow_production: Annotated[bool, _form("Allow production")] = False,
    lock_wait: Annotated[float, _form("Wait for the environment (seconds)", ge=0)] = 0.0,
    mission: Annotated[str, _form("Mission")] = "",
    sign_off_timeout: Annotated[int, _form("Sign-off timeout (seconds)", ge=1)] = 3600,
    find_breaking_point: Annotated[bool, _form("Find the breaking point")] = False,
) -> RunSummary | State[Any]:
    """Run one chaos scenario as the safe-run protocol.

    Args:
        scenario: The catalog scenario to run.
        environment: Where to run it. Its Game Day Environment block is used if there is one,
            else its environment file.
        max_severity: Stop the ladder at this step. 0 climbs the scenario's whole ladder.
        duration: Cap on the time spent in the steps, in seconds: steps that do not fit are
            left out. 0 keeps the scenario's own dwells.
        dry_run: Check, preflight and measure the baseline, show the plan, inject nothing.
        requester: Your name. The environment may allow only some requesters.
        allow_production: Required to run in an environment marked production.
        lock_wait: Seconds to wait for a game day already running in the environment to end.
        mission: A mission of the catalog (or a mission file) this run carries out. Leave
            empty for none.
        sign_off_timeout: Seconds to wait for a second person when the ladder reaches the
            environment's sign-off severity; then the run ends with nothing injected.
        find_breaking_point: After a guard stops a step, bisect between the last value that
            held and the one that broke, and report the bracket. A scenario with a search
            entry always does; this asks it of one without (at a 5 % resolution).
    """
    with stop_signals() as stop:
        run = str(current_run.id or uuid.uuid4())
        catalog = load_default()
        chosen = catalog.scenario(str(scenario))
        planned = load_mission(mission, catalog) if mission else None
        # 0 and "" are the form's "the scenario's own"; the protocol speaks of None.
        request = Request(chosen, load_environment(environment), requester or None,
                          max_severity or None, duration or None, allow_production, planned,
                          find_breaking_point)
        try:
            ctx = open_run(run, request, catalog.signals)
        except RefusedError as exc:
            return _refused(run, request, str(exc))
        ctx.progress = _progress_printer()
        try:
            async with contextlib.AsyncExitStack() as held:
                # Waiting for the environment can take long: a stop signal ends the wait.
                await stoppable(held.enter_async_context(_one_per_environment(ctx, dry_run)))
                return await _protocol(ctx, stop, lock_wait, dry_run, sign_off_timeout)
        finally:
            ctx.close()


async def _protocol(ctx: RunContext, stop: Stop, lock_wait: float, dry_run: bool,
                    sign_off_timeout: int) -> RunSummary | State[Any]:
    if stop.requested:
        return await _cancelled_early(ctx, stop)
    prepared = await prepare_phase(ctx, lock_wait=lock_wait, dry_run=dry_run)
    if isinstance(prepared, State) or stop.requested:
        return await _cancelled_early(ctx, stop)
    if isinstance(prepared, Refusal):
        _end(ctx, Outcome("refused", None, None, prepared.reason))
        return _refused(ctx.run, ctx.request, prepared.reason)
    if dry_run:
        return _dry_run_summary(ctx)
    if needs_sign_off(ctx):
        decision = await stoppable(await_sign_off(ctx, sign_off_timeout, pause_for_sign_off))
        if isinstance(decision, State) or stop.requested:
            return await _cancelled_early(ctx, stop)
        if not decision.granted:
            _end(ctx, Outcome("refused", None, None, decision.reason))
            return _refused(ctx.run, ctx.request, decision.reason)
    return await _run_ladder(ctx, stop)


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


async def _run_ladder(ctx: RunContext, stop: Stop) -> RunSummary | State[Any]:
    escalation: Escalation | None = None
    searched: SearchRun | None = None
    rollback: RollbackResult | None = None
    error: str | None = None
    cancelled = False
    where = "during the rollback"
    try:
        climbed = await escalate_phase(ctx)
        escalation = climbed if isinstance(climbed, Escalation) else None
        if escalation is not None and ctx.request.search is not None and not stop.requested:
            found = await search_phase(ctx, escalation)
            searched = found if isinstance(found, SearchRun) else None
    except (asyncio.CancelledError, KeyboardInterrupt) as exc:
        # Not a stop signal of ours (those end the phase with a state): Prefect's or asyncio's.
        cancelled = True
        how = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else "cancelled"
        ctx.journal.write(CancelledNote(message=f"{how} while the ladder ran; rolling back"))
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        ctx.journal.write(ErrorNote(message=error))
        raise
    else:
        if stop.requested:
            where = _step_now(ctx)
            ctx.journal.write(CancelledNote(
                message=f"cancelled by signal {stop.name} {where}; rolling back"))
    finally:
        # Renewing stops first: a fault the rollback cannot reach still ends within its lease.
        ctx.leases.stop()
        rollback = revert_run(ctx.run, ctx.environment, journal=ctx.journal,
                              settle=settle_time(ctx))
        _announce_rollback(ctx, rollback)
        # A stop asked for while we reverted reaches its handler now: under stop_signals it
        # is recorded (stop.requested), else it ends the process as it would have.
        for sig in dict.fromkeys(rollback.deferred_signals):
            signal.raise_signal(sig)
        if error is not None or cancelled:  # leaving by an exception: record the end now
            _end(ctx, decide(None, None, rollback, error=error, cancelled=cancelled))
            write_postmortem(ctx.run, environment=ctx.environment, runbook=ctx.scenario.runbook,
                             description=ctx.scenario.description, run_url=_run_url())
    if stop.requested:
        return await _cancelled(ctx, stop, escalation, rollback, where)
    recovered = await recover_phase(ctx)
    if isinstance(recovered, State) or stop.requested:
        return await _cancelled(ctx, stop, escalation, rollback, "while the signals recovered")
    back, seconds = recovered
    ctx.notify(RecoveryNotice(
        run=ctx.run, text=f"recovered in {seconds:.1f}s" if back
        else "signals did not return to the baseline in time",
        level="info" if back else "warning", recovered=back, seconds=seconds))
    await _budget_after(ctx)
    assert escalation is not None
    observation = await observe_phase(ctx, escalation, searched)
    if isinstance(observation, State) or stop.requested:
        return await _cancelled(ctx, stop, escalation, rollback, "while observing the steps")
    outcome = decide(escalation, observation, rollback,
                     breaking_point=searched.bracket_text if searched else None)
    _end(ctx, outcome)
    # From here a stop signal only sets the exit code: the run has ended.
    learned = await learn_phase(ctx.run, ctx.scenario, ctx.environment, _run_url())
    ctx.notify(summary_notice(learned))
    return RunSummary.ended(ctx.run, ctx.scenario.name, ctx.environment.name, outcome,
                            postmortem=str(learned.path), search=learned.report.search)


async def _budget_after(ctx: RunContext) -> None:
    """Journal the error budget left after recovery, for the postmortem. The run is over by
    now: whatever goes wrong here is logged, never the run's failure."""
    try:
        await measure_budget(ctx, "after")
    except Exception as exc:
        with contextlib.suppress(MissingContextError):
            get_run_logger().warning("game day %s: the error budget after the run was not "
                                     "measured: %s: %s", ctx.run, type(exc).__name__, exc)


def _step_now(ctx: RunContext) -> str:
    """Where the run was, by the journal: "during step N", "during probe N of the search" or
    "before the first step"."""
    started = [e for e in read_journal(journal_path(ctx.run))
               if isinstance(e, StepStartedEvent | ProbeStartedEvent)]
    if not started:
        return "before the first step"
    last = started[-1]
    if isinstance(last, ProbeStartedEvent):
        return f"during probe {last.probe} of the breaking-point search"
    return f"during step {last.severity}"


async def _cancelled(ctx: RunContext, stop: Stop, escalation: Escalation | None,
                     rollback: RollbackResult, where: str) -> State[Any]:
    """End a run a stop signal cut short, after its rollback: the end, the postmortem (its
    charts left for ``chaosctl report``, so that the process can exit at once) and a
    Cancelled state carrying the summary."""
    by = await _cancelled_by(stop)
    outcome = decide(escalation, None, rollback, cancelled=True, by=f"{by} {where}")
    _end(ctx, outcome)
    learned = await learn(ctx.run, environment=ctx.environment, runbook=ctx.scenario.runbook,
                          description=ctx.scenario.description, run_url=_run_url(),
                          charts=False)
    ctx.notify(summary_notice(learned))
    return Cancelled(message=outcome.summary, data=RunSummary.ended(
        ctx.run, ctx.scenario.name, ctx.environment.name, outcome, postmortem=str(learned.path)))


async def _cancelled_early(ctx: RunContext, stop: Stop) -> State[Any]:
    """End a run a stop signal cut short before its first step: nothing was injected."""
    by = await _cancelled_by(stop)
    outcome = decide(None, None, None, cancelled=True, by=f"{by} before the first step")
    ctx.journal.write(CancelledNote(message=outcome.summary))
    _end(ctx, outcome)
    return Cancelled(message=outcome.summary, data=RunSummary.ended(
        ctx.run, ctx.scenario.name, ctx.environment.name, outcome))


async def _cancelled_by(stop: Stop) -> str:
    """What stopped the run, in words. A cancel in Prefect's UI or API reaches a deployment
    run as its worker's SIGTERM; the run's Cancelling state tells it from any other SIGTERM."""
    if stop.signum == signal.SIGTERM and current_deployment.id is not None and current_run.id:
        with contextlib.suppress(Exception):  # Prefect unreachable: the signal is what we know
            async with get_client() as client:
                found = await asyncio.wait_for(
                    client.read_flow_run(uuid.UUID(str(current_run.id))), 2.0)
            if found.state is not None and found.state.is_cancelling():
                return "Prefect (a cancel from its UI or API)"
    return f"signal {stop.name}"


def _refused(run: str, request: Request, reason: str) -> State[Any]:
    # A refusal is an answer, not a crash: a Failed state with the reason and no traceback,
    # in the UI as on the command line.
    return Failed(message=reason, data=RunSummary.refused(
        run, request.scenario.name, request.environment.name, reason))


def _announce_rollback(ctx: RunContext, rollback: RollbackResult) -> None:
    if rollback.clean:
        ctx.notify(RollbackNotice(run=ctx.run, text=f"rollback done in {rollback.seconds:.2f}s: "
                                  f"{len(rollback.reverted)} fault(s) reverted, none active"
                                  + (f"; {len(rollback.silences)} silence(s) deleted"
                                     if rollback.silences else ""),
                                  seconds=rollback.seconds, reverted=len(rollback.reverted)))
    else:
        problems = (*rollback.failed, *rollback.remaining)
        ctx.notify(RollbackFailedNotice(run=ctx.run, text="ROLLBACK FAILED, faults may remain: "
                                        + "; ".join(problems), seconds=rollback.seconds,
                                        problems=problems))


def _end(ctx: RunContext, outcome: Outcome) -> None:
    ctx.journal.write(RunEndedEvent(outcome=outcome.outcome, highest_held=outcome.highest_held,
                                    first_broken=outcome.first_broken, summary=outcome.summary))
    with contextlib.suppress(MissingContextError):
        get_run_logger().info("game day %s: %s", ctx.run, outcome.summary)


def _dry_run_summary(ctx: RunContext) -> RunSummary:
    plan = dry_run_plan(ctx)
    ctx.journal.write(RunEndedEvent(outcome="dry_run", summary="dry run: nothing injected"))
    return RunSummary(run=ctx.run, scenario=ctx.scenario.name, environment=ctx.environment.name,
                      outcome="dry_run", plan=plan,
                      summary=f"dry run: {len(plan.steps)} step(s) planned, nothing injected")


def _run_url() -> str | None:
    url = current_run.ui_url
    return str(url) if url else None


def _progress_printer() -> Any:
    def show(line: str) -> None:
        print(line, flush=True)

    return show
