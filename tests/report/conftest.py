"""Recorded game days (journals and what Prometheus saw) and the flows' bench for reports.

``data/`` holds three runs recorded on the demo stack with ``chaosctl start`` and
``chaosctl report RUN --save-observed``: the latency ladder passing two steps, the same
ladder aborted by its error-rate guard at the third, and a run whose auth proxy was killed
mid-step so that rollback failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from gameday.journal import Event, read_journal
from gameday.report import GameDayReport, Observed, build_report, observed_from_json
from tests.flows.conftest import bench

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"
#: The recorded runs, by outcome.
CASES = ("passed", "aborted", "rollback_failed")
RUNBOOK = "docs/runbooks/auth-service.md"


def journal(case: str) -> list[Event]:
    """The recorded journal of ``case``."""
    return read_journal(DATA / f"{case}.journal.jsonl")


def observed(case: str) -> Observed:
    """What Prometheus saw over the run of ``case``."""
    return observed_from_json((DATA / f"{case}.observed.json").read_text(encoding="utf-8"))


def report(case: str, *, with_prometheus: bool = True,
           events: Sequence[Event] | None = None) -> GameDayReport:
    """The report of ``case``, as the learn phase builds it."""
    return build_report(events if events is not None else journal(case),
                        observed=observed(case) if with_prometheus else None,
                        runbook=RUNBOOK, description="Slow auth-service down step by step.",
                        service="user-service", dependency="auth-service",
                        prometheus_url="http://127.0.0.1:9090")


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> str:
    """Each recorded run in turn."""
    value: str = request.param
    return value


__all__ = ["CASES", "DATA", "GOLDEN", "bench", "case", "journal", "observed", "report"]
