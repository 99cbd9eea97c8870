"""The sweep flow: revert every fault of a game-day run, or of a whole environment.

The reaper automation runs it for a game-day run that crashed (``run``); people run it from the
UI for either. It works from the run's journal and the drivers (faults carry ``run`` and
``environment`` labels), so it needs nothing of the dead run's process, and it releases the
environment's slot the dead run still held.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Failed

from blocks import load_environment
from gameday.paths import journal_path
from gameday.protocol.learn import write_postmortem
from gameday.protocol.lock import EnvironmentLock
from gameday.protocol.reap import journaled_environment, reap_run, revert_environment
from gameday.protocol.rollback import RollbackResult
from orchestration.slots import free_slot


@flow(name="sweep")
async def sweep(run: str | None = None, environment: str | None = None) -> Any:
    """Revert every fault of a game-day run, or of a whole environment, through the drivers.

    Args:
        run: A game-day flow run ID: revert the faults its journal and the drivers know of,
            end its journal and postmortem if it had none, and free its environment's slot.
        environment: An environment name or file. With a run: where that run ran (default:
            the environment its journal names). Alone: revert every fault labelled with this
            environment; only when no game day runs there.
    """
    logger = get_run_logger()
    run = (run or "").strip() or None
    name = (environment or "").strip() or (journaled_environment(run) if run else None)
    if name is None and run is not None and journal_path(run).exists():
        # The run died before it wrote its plan, so before any fault: only its slot is left.
        freed = free_slot(run)
        logger.info("run %s injected nothing; released %d slot lease(s)", run, freed)
        return {"run": run, "reverted": [], "problems": [], "slot_leases_released": freed}
    if name is None:
        return Failed(message="give a run (whose journal is here) or an environment")
    place = load_environment(name)
    if run is None:
        holder = EnvironmentLock(place.name).holder()
        if holder is not None:
            return Failed(message=f"run {holder.run} is live in {place.name}: cancel it (its "
                          "rollback reverts its faults) rather than sweep under it")
        result = revert_environment(place)
        _log(logger, result, f"environment {place.name}")
        return _summary(result, place.name, None)
    result, ended = reap_run(run, place, "swept after the run died")
    if ended:
        write_postmortem(run, environment=place)
    freed = free_slot(run)
    _log(logger, result, f"run {run}")
    if freed:
        logger.info("released %d slot lease(s) of run %s in %s", freed, run, place.name)
    return _summary(result, place.name, run, freed)


def _log(logger: Any, result: RollbackResult, what: str) -> None:
    for fault in result.reverted:
        logger.info("reverted %s", fault)
    for problem in (*result.failed, *result.remaining):
        logger.error("NOT clean: %s", problem)
    logger.info("%s: %d fault(s) reverted%s", what, len(result.reverted),
                "" if result.clean else "; FAULTS MAY REMAIN until their TTL")


def _summary(result: RollbackResult, environment: str, run: str | None, freed: int = 0) -> Any:
    problems = [*result.failed, *result.remaining]
    data = {"environment": environment, "run": run, "reverted": list(result.reverted),
            "problems": problems, "slot_leases_released": freed}
    if problems:
        return Failed(message="faults may remain: " + "; ".join(problems), data=data)
    return data
