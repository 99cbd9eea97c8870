"""Learn phase: the postmortem from the journal (rendering is safe to retry)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from gameday.protocol.learn import write_postmortem


@task(name="learn", cache_policy=NO_CACHE, retries=1)
def learn_phase(run: str, runbook: str | None, description: str,
                run_url: str | None) -> Path:
    """Render ``postmortem.md`` for the run and return its path."""
    return write_postmortem(run, runbook=runbook, description=description, run_url=run_url)
