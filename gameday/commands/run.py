"""``chaosctl start | status | stop``: run a game day, see what is active, stop it all."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError, GameDayError
from gameday.extras import prefect_layer, require
from gameday.protocol.summary import RunSummary
from gameday.units import parse_duration

#: Exit codes of ``chaosctl start`` by outcome. ``rollback_failed`` wins over every other code,
#: a stop signal's included.
EXIT = {"passed": 0, "dry_run": 0, "failed": 1, "aborted": 4, "rollback_failed": 5,
        "cancelled": 130}
#: Exit codes of ``chaosctl start`` stopped by a signal: 128 + its number, as a shell reports.
STOPPED: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}


def register(subparsers: Any) -> None:
    """Add ``start``, ``status`` and ``stop``."""
    start = subparsers.add_parser(
        "start", help="run a game day",
        description="Run one scenario as the safe-run protocol (prepare → escalate → observe → "
        "rollback → learn) against the environment's Prefect server, with live progress.",
        epilog="Exit codes: 0 passed (or dry run), 1 failed, 2 bad input, 3 refused or "
        "environment busy, 4 aborted by a guard, 5 rollback failed (faults may remain; wins "
        "over every other code, a signal's too), 130 cancelled or stopped by SIGINT (Ctrl-C), "
        "143 stopped by SIGTERM.")
    start.add_argument("scenario", nargs="?", help="scenario name from the catalog")
    start.add_argument("--mission", metavar="FILE|NAME",
                       help="run a mission: its scenario, environment, limits and requester")
    start.add_argument("--env", default=None, help="environment name or file (default: demo)")
    start.add_argument("--max-severity", type=int, default=None, metavar="N",
                       help="stop the ladder at step N")
    start.add_argument("--duration", type=parse_duration, default=None, metavar="D",
                       help="cap on the dwells, e.g. 90s or 5m")
    start.add_argument("--requester", default=None,
                       help="who asks for the run (default: $GAMEDAY_REQUESTER or $USER)")
    start.add_argument("--dry-run", action="store_true",
                       help="check, preflight and baseline only; print the plan; inject nothing")
    start.add_argument("--find-breaking-point", action="store_true",
                       help="after a guard stops a step, bisect between the last held and the "
                       "broken value for the breaking point (the scenario's search: settings, "
                       "else a 5%% resolution)")
    start.add_argument("--allow-production", action="store_true",
                       help="required for environments marked production")
    start.add_argument("--wait-lock", type=parse_duration, default=0.0, metavar="D",
                       help="wait this long for a running game day in the environment to end")
    start.add_argument("--json", action="store_true",
                       help="print the run's summary (a dry run's plan) as JSON on stdout; "
                       "progress goes to stderr")
    start.add_argument("--verbose", "-v", action="store_true",
                       help="also show Prefect's own log lines")
    start.set_defaults(handler=_stoppable(_start))

    status = subparsers.add_parser(
        "status", help="active faults and the current or last run",
        description="Show every fault the kit has in place in the environment (asking every "
        "driver) and the current or last game day.",
        epilog="Exit codes: 0 every driver answered, 1 some place could not be asked (it may "
        "still hold a fault), 2 bad input.")
    status.add_argument("--env", default="demo", help="environment name or file")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    stop = subparsers.add_parser(
        "stop", help="stop the running game day and revert every fault",
        description="Signal the running game day of the environment (SIGTERM: it rolls back), "
        "then revert every gameday fault in the environment, found by label on every driver.")
    stop.add_argument("--env", default="demo", help="environment name or file")
    stop.add_argument("--force", action="store_true",
                      help="SIGKILL the run if it has not ended 10 s after SIGTERM")
    stop.set_defaults(handler=_stop)


def _start(args: argparse.Namespace) -> int:
    _quiet_prefect(args.verbose)
    from gameday.commands import find_environment
    from gameday.load import load_default, load_mission

    require("prefect", "chaosctl start")

    catalog = load_default()
    mission = load_mission(args.mission, catalog) if args.mission else None
    scenario = args.scenario or (mission.scenario if mission else None)
    if scenario is None:
        raise ConfigError("give a SCENARIO or --mission (see chaosctl catalog list)")
    catalog.scenario(scenario)  # unknown names fail here, before anything starts
    env_name = args.env or (mission.environment if mission else "demo")
    environment = find_environment(env_name)
    api = os.environ.get("PREFECT_API_URL") or environment.prefect_api_url
    if not api:
        raise ConfigError(f"no Prefect server for environment {environment.name!r}: set "
                          "prefect_api_url in its file or PREFECT_API_URL (chaosctl demo up "
                          "starts one for the demo)")
    game_day = prefect_layer("flows.game_day", "chaosctl start").game_day
    signals = prefect_layer("orchestration.signals", "chaosctl start")
    prefect_layer("orchestration.provision", "chaosctl start").use_api(api)
    if not args.verbose:
        signals.quiet_clean_stops()
    requester = args.requester or (mission.requester if mission else None) or os.environ.get(
        "GAMEDAY_REQUESTER") or os.environ.get("USER") or "unknown"
    # With --json, stdout carries the JSON alone: progress and notices go to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        print(f"game day {scenario} in {environment.name} (Prefect: {api})", flush=True)
        state: Any = asyncio.run(game_day(
            scenario=scenario, environment=env_name,
            # 0 and "" ask for the scenario's own ladder and dwells, as in the UI's form.
            max_severity=args.max_severity or (mission.max_severity if mission else None) or 0,
            duration=args.duration or (mission.duration if mission else None) or 0.0,
            dry_run=args.dry_run, requester=requester, allow_production=args.allow_production,
            lock_wait=args.wait_lock, mission=args.mission or "",
            find_breaking_point=args.find_breaking_point, return_state=True))
        result = asyncio.run(_result(state))
    # The stop signal the flow body received, if any: the run rolled back and ended Cancelled
    # (unless it had ended already), and the exit code is the signal's.
    stopped: int | None = signals.received()
    if isinstance(result, GameDayError):
        if _rollback_failed() or stopped is not None:
            print(f"chaosctl: {result}", file=sys.stderr)
            return _stopped(stopped) if stopped is not None else EXIT["rollback_failed"]
        raise result
    if not isinstance(result, RunSummary):
        failure = f"{type(result).__name__}: {result}"
        result = RunSummary(run=str(state.state_details.flow_run_id or ""), scenario=scenario,
                            environment=environment.name, outcome="failed", summary=failure)
    _show(result, args.json, api)
    if stopped is not None and result.outcome not in ("cancelled", "rollback_failed"):
        return _stopped(stopped)  # it came once the run had ended
    if _rollback_failed():
        return EXIT["rollback_failed"]
    if stopped is not None:
        return STOPPED.get(stopped, 128 + stopped)
    if result.outcome == "refused":
        return 3
    return EXIT.get(result.outcome, 1)


def _stoppable(command: Callable[[argparse.Namespace], int]
               ) -> Callable[[argparse.Namespace], int]:
    """``command``, ended by SIGINT or SIGTERM with that signal's exit code (5 if a rollback
    failed), never by a traceback or a bare kill.

    While the game day's flow body runs, the flow handles both signals itself and ends the
    run Cancelled (``orchestration/signals.py``). Before and after it, Prefect turns SIGTERM
    into ``TerminationSignal``, and the Prefect layer's handler raises the same outside a
    flow run; they are caught here.
    """

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        signals = prefect_layer("orchestration.signals", "chaosctl start")
        try:
            previous = signal.signal(signal.SIGTERM, signals.raise_termination)
        except ValueError:  # not the main thread: no signal reaches this code anyway
            return command(args)
        try:
            return command(args)
        except BaseException as exc:
            signum = (signal.SIGINT if isinstance(exc, KeyboardInterrupt)
                      else signals.termination_signal(exc))
            if signum is None:
                raise
            return _stopped(signum)
        finally:
            signal.signal(signal.SIGTERM, previous)
            # The process ends next: a full collection of Prefect's heap at interpreter exit
            # takes up to a second and frees nothing the exit needs.
            gc.freeze()

    return run


def _rollback_failed() -> bool:
    """Whether a rollback in this process was not clean (whatever the run's result says)."""
    from gameday.protocol.rollback import unclean_rollbacks

    return bool(unclean_rollbacks())


def _stopped(signum: int) -> int:
    """The exit code of a run a signal stopped: 5 when a rollback failed, else the signal's."""
    from gameday.protocol.rollback import unclean_rollbacks

    name = signal.Signals(signum).name
    problems = [p for r in unclean_rollbacks() for p in (*r.failed, *r.remaining)]
    if problems:
        print(f"outcome: rollback_failed — stopped by {name}; faults may remain: "
              + "; ".join(problems), file=sys.stderr, flush=True)
        return EXIT["rollback_failed"]
    print(f"chaosctl: stopped by {name}", file=sys.stderr, flush=True)
    return STOPPED.get(signum, 128 + signum)


def _quiet_prefect(verbose: bool) -> None:
    """Keep Prefect's own INFO lines (run created, task finished …) off the terminal.

    Only the console handler's level is raised, before Prefect configures its logging: the
    records still reach the Prefect API, so the run's logs in the UI stay complete.
    """
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


def _show(result: RunSummary, as_json: bool, api: str) -> None:
    """The end of a run: JSON for machines, else lines for a person."""
    from gameday.protocol.summary import plan_lines
    from gameday.report.links import flow_run_link

    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    elif result.outcome == "refused":
        print(f"chaosctl: {result.summary}")
    elif result.plan is not None:
        print("\n".join(plan_lines(result)))
    else:
        print(f"outcome: {result.outcome} — {result.summary}")
        if result.trend:
            print(f"{'REGRESSION: ' if result.regression else 'trend: '}{result.trend}")
        if result.postmortem:
            print(f"postmortem: {result.postmortem}")
        if result.run:
            print(f"Prefect run: {flow_run_link(api, result.run)}")


async def _result(state: Any) -> Any:
    """The flow's return value, or the exception it ended with."""
    value = state.result(raise_on_failure=False)
    if asyncio.iscoroutine(value):
        value = await value
    return value


def _status(args: argparse.Namespace) -> int:
    from gameday.commands import find_environment
    from gameday.protocol.lock import EnvironmentLock
    from gameday.protocol.prepare import build_drivers

    environment = find_environment(args.env)
    faults: list[dict[str, Any]] = []
    drivers = build_drivers(environment)
    # A place no driver can be built for is reported, not skipped: it may hold a fault.
    problems = [f"{e.driver} {e.service}: {why}" for e, why in drivers.reasons()]
    for endpoint, driver in drivers.built:
        try:
            faults += [{"driver": h.driver, "where": h.endpoint, "fault": h.fault,
                        "run": h.labels.run, "scenario": h.labels.scenario, "step": h.labels.step,
                        "expires_in_s": round(h.expires_at - time.time(), 1)}
                       for h in driver.active()]
        except GameDayError as exc:
            problems.append(f"{endpoint.driver} {endpoint.service}: {exc}")
    holder = EnvironmentLock(environment.name).holder()
    last = _last_run()
    data = {"environment": environment.name, "enabled": environment.enabled,
            "running": {"run": holder.run, "pid": holder.pid} if holder else None,
            "last_run": last, "active_faults": faults, "problems": problems}
    drivers.close()
    if args.json:
        print(json.dumps(data, indent=2))
        return 1 if problems else 0
    state = "enabled" if environment.enabled else "DISABLED (kill switch)"
    print(f"environment {environment.name}: {state}")
    print(f"running: {holder.run} (pid {holder.pid})" if holder else "running: none")
    if last:
        print(f"last run: {last['run']} {last['scenario']} → {last['outcome']}")
    print(f"active faults: {len(faults)}")
    for f in faults:
        print(f"  {f['driver']} {f['where']}: {f['fault']} (run {f['run']}, step {f['step']}, "
              f"expires in {f['expires_in_s']}s)")
    for problem in problems:
        print(f"  cannot ask: {problem}")
    return 1 if problems else 0


def _last_run() -> dict[str, Any] | None:
    from gameday.journal import PlanEvent, RunEndedEvent, read_journal
    from gameday.paths import state_dir

    journals = sorted((state_dir() / "runs").glob("*/journal.jsonl"),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    for path in journals[:1]:
        try:
            events = read_journal(path)
        except GameDayError:
            continue
        plan = next((e for e in events if isinstance(e, PlanEvent)), None)
        end = next((e for e in reversed(events) if isinstance(e, RunEndedEvent)), None)
        return {"run": path.parent.name, "scenario": plan.scenario if plan else "?",
                "outcome": end.outcome if end else "running or crashed",
                "journal": str(Path(path))}
    return None


def _stop(args: argparse.Namespace) -> int:
    from gameday.commands import find_environment
    from gameday.procs import alive
    from gameday.protocol.lock import EnvironmentLock
    from gameday.protocol.reap import revert_environment

    environment = find_environment(args.env)
    holder = EnvironmentLock(environment.name).holder()
    if holder and holder.pid != os.getpid():
        print(f"stopping run {holder.run} (pid {holder.pid}): SIGTERM, it rolls back")
        os.kill(holder.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(holder.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(holder.pid) and args.force:
            print(f"run {holder.run} did not end in 10s: SIGKILL")
            os.kill(holder.pid, signal.SIGKILL)
    # Fails closed: an endpoint whose driver cannot be built, list or verify is a problem.
    result = revert_environment(environment)
    for fault in result.reverted:
        print(f"reverted {fault}")
    problems = [*result.failed, *result.remaining]
    for problem in problems:
        print(f"NOT clean: {problem}")
    print(f"{len(result.reverted)} fault(s) reverted"
          + (f", {len(problems)} problem(s): faults may remain" if problems else ""))
    return 0 if result.clean else EXIT["rollback_failed"]
