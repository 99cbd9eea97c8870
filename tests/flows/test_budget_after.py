"""The game-day flow's budget after recovery: journaled from a real Prometheus, and never the
run's failure."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flows.game_day import _budget_after
from gameday.alert_events import BudgetEvent
from gameday.errors import JournalError
from gameday.guards import Prometheus
from gameday.journal import Journal, read_journal
from gameday.models.slo import SLO
from gameday.protocol.budget import measure_budget
from tests.guards.conftest import PromStack, Target
from tests.guards.conftest import prom as prom
from tests.guards.conftest import target as target


def _slo() -> SLO:
    def gauge(which: str) -> str:
        return f'sum(max_over_time(gameday_test_value{{name="after_{which}"}}[{{range}}]))'

    return SLO(good=gauge("good"), total=gauge("total"), objective=0.99, window=3600,
               min_budget_left=0.25)


def context(url: str, journal: Journal, slo: SLO | None) -> Any:
    """What ``measure_budget`` reads of a run: its SLO, its Prometheus, its journal."""
    return SimpleNamespace(run="r-after", request=SimpleNamespace(slo=slo), journal=journal,
                           prometheus=Prometheus(url, timeout=2.0))


def test_the_budget_after_is_journaled(prom: PromStack, target: Target, tmp_path: Path) -> None:
    """After recovery the flow journals the budget left, as the postmortem reads it."""
    prom.set_and_wait(target, "after_good", 998)
    prom.set_and_wait(target, "after_total", 1000)
    path = tmp_path / "journal.jsonl"
    with Journal(path, fsync=False) as journal:
        ctx = context(prom.url, journal, _slo())
        asyncio.run(_budget_after(ctx))
        ctx.prometheus.close()
    (event,) = read_journal(path)
    assert isinstance(event, BudgetEvent)
    assert event.moment == "after" and event.left is not None and abs(event.left - 0.8) < 1e-9
    assert (event.objective, event.min_left, event.error) == (0.99, 0.25, None)


def test_without_an_slo_nothing_is_journaled(prom: PromStack, tmp_path: Path) -> None:
    """A run that keeps no SLO has no budget to measure."""
    path = tmp_path / "journal.jsonl"
    with Journal(path, fsync=False) as journal:
        asyncio.run(_budget_after(context(prom.url, journal, None)))
    assert read_journal(path) == []


def test_a_failure_after_the_run_does_not_fail_it(tmp_path: Path) -> None:
    """Prometheus gone and the journal closed: the flow goes on to observe and learn."""
    journal = Journal(tmp_path / "journal.jsonl", fsync=False)
    journal.close()  # writing now raises JournalError
    ctx = context("http://127.0.0.1:9", journal, _slo())
    with pytest.raises(JournalError):  # what the flow would die of, unguarded
        asyncio.run(measure_budget(ctx, "after"))
    asyncio.run(_budget_after(ctx))
    ctx.prometheus.close()
