"""``chaosctl start | status | stop``: run a game day, see what is active, stop it all."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError, GameDayError
from gameday.extras import prefect_layer, require
from gameday.units import parse_duration

#: Exit codes of ``chaosctl start`` by outcome.
EXIT = {"passed": 0, "dry_run": 0, "failed": 1, "aborted": 4, "rollback_failed": 5,
        "cancelled": 130}


def register(subparsers: Any) -> None:
    """Add ``start``, ``status`` and ``stop``."""
    start = subparsers.add_parser(
        "start", help="run a game day",
        description="Run one scenario as the safe-run protocol (prepare → escalate → observe → "
        "rollback → learn) against the environment's Prefect server, with live progress.",
        epilog="Exit codes: 0 passed (or dry run), 1 failed, 2 bad input, 3 refused or "
        "environment busy, 4 aborted by a guard, 5 rollback failed (faults may remain), "
        "130 cancelled.")
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
    start.add_argument("--allow-production", action="store_true",
                       help="required for environments marked production")
    start.add_argument("--wait-lock", type=parse_duration, default=0.0, metavar="D",
                       help="wait this long for a running game day in the environment to end")
    start.set_defaults(handler=_start)

    status = subparsers.add_parser(
        "status", help="active faults and the current or last run",
        description="Show every fault the kit has in place in the environment (asking every "
        "driver) and the current or last game day.")
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
    from gameday.environments import load_environment
    from gameday.load import load_default, load_mission

    require("prefect", "chaosctl start")

    catalog = load_default()
    mission = load_mission(args.mission, catalog) if args.mission else None
    scenario = args.scenario or (mission.scenario if mission else None)
    if scenario is None:
        raise ConfigError("give a SCENARIO or --mission (see chaosctl catalog list)")
    catalog.scenario(scenario)  # unknown names fail here, before anything starts
    env_name = args.env or (mission.environment if mission else "demo")
    environment = load_environment(env_name)
    api = os.environ.get("PREFECT_API_URL") or environment.prefect_api_url
    if not api:
        raise ConfigError(f"no Prefect server for environment {environment.name!r}: set "
                          "prefect_api_url in its file or PREFECT_API_URL (chaosctl demo up "
                          "starts one for the demo)")
    game_day = prefect_layer("flows.game_day", "chaosctl start").game_day
    prefect_layer("orchestration.provision", "chaosctl start").use_api(api)
    requester = args.requester or (mission.requester if mission else None) or os.environ.get(
        "GAMEDAY_REQUESTER") or os.environ.get("USER") or "unknown"
    print(f"game day {scenario} in {environment.name} (Prefect: {api})", flush=True)
    state: Any = asyncio.run(game_day(
        scenario=scenario, environment=env_name,
        max_severity=args.max_severity or (mission.max_severity if mission else None),
        duration=args.duration or (mission.duration if mission else None),
        dry_run=args.dry_run, requester=requester, allow_production=args.allow_production,
        lock_wait=args.wait_lock, mission=args.mission, return_state=True))
    result = asyncio.run(_result(state))
    if isinstance(result, GameDayError):
        raise result
    if isinstance(result, BaseException):
        print(f"outcome: failed — {type(result).__name__}: {result}")
        return 1
    if result.get("outcome") == "refused":
        print(f"chaosctl: {result['summary']}")
        return 3
    if args.dry_run:
        print(json.dumps(result, indent=2))
    else:
        print(f"outcome: {result['outcome']} — {result['summary']}")
        print(f"postmortem: {result['postmortem']}")
    return EXIT.get(str(result["outcome"]), 1)


async def _result(state: Any) -> Any:
    """The flow's return value, or the exception it ended with."""
    value = state.result(raise_on_failure=False)
    if asyncio.iscoroutine(value):
        value = await value
    return value


def _status(args: argparse.Namespace) -> int:
    from gameday.environments import load_environment
    from gameday.protocol.lock import EnvironmentLock
    from gameday.protocol.prepare import all_drivers

    environment = load_environment(args.env)
    faults: list[dict[str, Any]] = []
    problems = []
    for endpoint, driver in all_drivers(environment):
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
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
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
    return 0


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
    from gameday.environments import load_environment
    from gameday.procs import alive
    from gameday.protocol.lock import EnvironmentLock
    from gameday.protocol.prepare import all_drivers

    environment = load_environment(args.env)
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
    reverted = failed = 0
    for _endpoint, driver in all_drivers(environment):
        try:
            handles = [h for h in driver.active() if h.labels.environment == environment.name]
        except GameDayError as exc:
            print(f"cannot list faults on {driver.kind}: {exc}")
            failed += 1
            continue
        for handle in handles:
            try:
                driver.revert(handle)
                reverted += 1
                print(f"reverted {handle.fault} at {handle.endpoint} (run {handle.labels.run})")
            except GameDayError as exc:
                failed += 1
                print(f"FAILED to revert {handle.fault} at {handle.endpoint}: {exc}")
    print(f"{reverted} fault(s) reverted" + (f", {failed} problem(s)" if failed else ""))
    return 0 if not failed else 5
