"""Clean up after a dead game day from this process, as a worker or the reaper would.

``python -m tests.flows.dead_run hook RUN`` calls the game-day flow's crash hook with the run
as the Prefect server has it; ``python -m tests.flows.dead_run sweep RUN ENV`` runs the sweep
flow for it against the server. Either prints one JSON line with what came back.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Crashed


async def _flow_run(run: str) -> FlowRun:
    async with get_client() as client:
        return await client.read_flow_run(uuid.UUID(run))


def main(argv: list[str]) -> int:
    """Run the hook or the sweep for ``argv``'s run; 0 once it returned."""
    what, run = argv[0], argv[1]
    if what == "hook":
        from flows.game_day import game_day, revert_after_crash

        revert_after_crash(game_day, asyncio.run(_flow_run(run)),
                           Crashed(message="killed by the test"))
        print(json.dumps({"hook": "returned"}), flush=True)
        return 0
    from flows.sweep import sweep

    state: Any = asyncio.run(sweep(run=run, environment=argv[2], return_state=True))
    print(json.dumps({"state": state.type.value, "message": state.message}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
