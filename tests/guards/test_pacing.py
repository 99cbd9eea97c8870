"""Guards judge each new sample soon after Prometheus has it, and only new samples."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from gameday.guards.hold import HoldResult, hold
from gameday.guards.pacing import MIN_GAP, Pacer
from gameday.guards.prometheus import Prometheus
from gameday.guards.queries import GuardQuery
from gameday.guards.rules import Sample
from gameday.journal import GuardSampleEvent, Journal, read_journal
from tests.guards.conftest import SCRAPE_INTERVAL, PromStack
from tests.guards.conftest import Target as ScrapeTarget
from tests.guards.test_hold import gauge, rule

STALE = 3 * SCRAPE_INTERVAL


def stamped(stamp: float, value: float = 1.0, query_time: float | None = None) -> Sample:
    """A sample of ``value`` computed from a scrape at ``stamp``."""
    return Sample(query_time=stamp + 0.2 if query_time is None else query_time, value=value,
                  sample_time=stamp)


# --- the pacer alone ----------------------------------------------------------------------


def test_only_a_newer_scrape_or_blindness_is_worth_judging() -> None:
    """The same scrape twice is one observation; anything blind is judged at once."""
    pacer = Pacer(interval=1.0, scrape_interval=1.0)
    first = stamped(100.0)
    assert pacer.worth_judging(first, STALE)
    pacer.judged(first)
    assert not pacer.worth_judging(stamped(100.0, value=9.0, query_time=100.5), STALE)
    assert pacer.worth_judging(stamped(101.0), STALE)
    assert pacer.worth_judging(Sample(query_time=100.6, error="timeout"), STALE)
    assert pacer.worth_judging(Sample(query_time=100.6), STALE)  # no data
    assert pacer.worth_judging(Sample(query_time=100.6, value=math.nan), STALE)
    assert pacer.worth_judging(Sample(query_time=100.6, value=1.0), STALE)  # no stamp: stale
    assert pacer.worth_judging(stamped(100.0, query_time=100.0 + STALE + 0.1), STALE)


def test_the_next_poll_goes_out_just_after_the_next_scrape_is_due() -> None:
    """Prometheus' clock 5 s ahead of ours: the poll is due at scrape + interval + settle."""
    pacer = Pacer(interval=1.0, scrape_interval=1.0, settle=0.03, retry=0.05)
    assert pacer.delay(now=0.0) == 1.0  # nothing learnt yet: the guard interval
    # Evaluated at 1005.0 on Prometheus' clock for a poll we sent at 1000.0 on ours, from a
    # scrape at 1004.8 theirs: the next scrape is due at 1005.8 theirs, 1000.8 ours.
    pacer.observe(stamped(1004.8, query_time=1005.0), asked=1000.0)
    assert pacer.delay(now=1000.5) == pytest.approx(0.33)
    # Polled at the due time and found nothing newer: look again soon.
    assert pacer.delay(now=1000.9) == pytest.approx(0.05)
    # Long past due (a dead target): back to the guard interval.
    assert pacer.delay(now=1002.5) == 1.0


def test_the_poll_schedule_is_capped_by_the_guard_interval() -> None:
    """A 15 s scrape still polls every guard interval, so blindness is seen as soon."""
    pacer = Pacer(interval=1.0, scrape_interval=15.0)
    pacer.observe(stamped(1000.0, query_time=1000.1), asked=1000.1)
    assert pacer.delay(now=1000.2) == 1.0
    assert pacer.delay(now=1000.0 + 15.0 + 0.02) >= MIN_GAP


def test_an_error_teaches_the_pacer_nothing() -> None:
    """An error sample's time is ours, not Prometheus': it must not move the schedule."""
    pacer = Pacer(interval=1.0, scrape_interval=1.0)
    pacer.observe(Sample(query_time=5000.0, error="refused"), asked=0.0)
    assert pacer.delay(now=0.0) == 1.0


# --- a hold over a simulated scrape grid -----------------------------------------------------


class ScrapeGrid:
    """Answers like Prometheus over one target scraped every ``every`` seconds.

    The newest visible sample is the last scrape at least ``ingest`` old; its value is the
    target's value at that scrape. Counts the polls.
    """

    def __init__(self, every: float, breach_at: float, ingest: float = 0.01) -> None:
        self.every, self.ingest = every, ingest
        self.phase = time.time() % every + every / 3  # scrapes not on the guard's grid
        self.breach_at = breach_at
        self.polls = 0

    def stamp(self, now: float) -> float:
        return self.phase + math.floor((now - self.ingest - self.phase) / self.every) * self.every

    async def sample(self, guard: GuardQuery) -> Sample:
        self.polls += 1
        now = time.time()
        stamp = self.stamp(now)
        return Sample(query_time=now, value=9.0 if stamp >= self.breach_at else 1.0,
                      sample_time=stamp)


def judged_stamps(path: Path) -> list[float]:
    """Input timestamps of the judged samples in a journal, in order; every one stamped."""
    stamps = [e.sample.sample_time for e in read_journal(path) if isinstance(e, GuardSampleEvent)]
    found = [s for s in stamps if s is not None]
    assert len(found) == len(stamps), f"an unstamped sample was judged: {stamps}"
    return found


def paced_hold(grid: ScrapeGrid, for_: str, journal: Journal | None = None) -> HoldResult:
    return asyncio.run(hold(30, [rule(for_=for_, query="g")], 1.0, sampler=grid,
                            stale_after=STALE, scrape_interval=grid.every,
                            record=journal.guard_recorder(1) if journal else None))


def test_for_counts_scrapes_and_each_scrape_is_judged_once(tmp_path: Path) -> None:
    """``for: 1s`` on a 0.5 s scrape: breached on the third breaching scrape, each judged once,
    a couple of polls per scrape."""
    grid = ScrapeGrid(every=0.5, breach_at=time.time() + 1.2)
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        result = paced_hold(grid, "1s", journal)
    assert result.verdict is not None and result.verdict.state == "breached", result.summary
    stamps = judged_stamps(path)
    assert stamps == sorted(set(stamps)), "a scrape was judged twice"
    first_breach = min(s for s in stamps if s >= grid.breach_at)
    assert first_breach + 1.0 - 1e-6 <= stamps[-1] <= first_breach + 1.5
    assert result.polls <= 4 * len(stamps) + 4


def test_a_breach_is_judged_soon_after_its_scrape_lands() -> None:
    """Polls follow the scrapes: every breaching scrape is judged within 0.3 s of landing,
    where polls on the 1 s guard grid would take up to a second (the pacer aims at tens of
    milliseconds; the bound leaves room for a loaded machine)."""
    lags = []
    for _ in range(5):
        grid = ScrapeGrid(every=0.5, breach_at=time.time() + 0.8)
        result = paced_hold(grid, "0s")
        assert result.verdict is not None and result.breached_at is not None
        visible = grid.stamp(result.breached_at) + grid.ingest
        lags.append(round(result.breached_at - visible, 3))
    assert max(lags) < 0.3, lags


# --- against a real Prometheus ----------------------------------------------------------


@pytest.mark.integration
def test_paced_guards_judge_each_real_scrape_once(prom: PromStack, target: ScrapeTarget,
                                                  tmp_path: Path) -> None:
    """On a real Prometheus with a 1 s scrape: one judged sample per scrape, each newer than
    the last, a few polls per scrape, and a breach found on the scrape that carries it."""
    prom.set_and_wait(target, "paced", 1.0)
    guard = gauge("paced", target, for_="1s")
    timer = threading.Timer(3.0, target.set, args=("paced", 50.0))
    path = tmp_path / "journal.jsonl"

    async def go() -> HoldResult:
        with Prometheus(prom.url, timeout=1.0) as client, Journal(path) as journal:
            return await hold(60, [guard], 1.0, sampler=client, stale_after=STALE,
                              scrape_interval=SCRAPE_INTERVAL, record=journal.guard_recorder(1))

    timer.start()
    try:
        result = asyncio.run(go())
    finally:
        timer.cancel()
    assert result.verdict is not None and result.verdict.state == "breached", result.summary
    stamps = judged_stamps(path)
    assert stamps == sorted(set(stamps)), stamps
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) >= 3 and all(gap >= SCRAPE_INTERVAL - 0.1 for gap in gaps), gaps
    assert result.polls <= 5 * result.samples, (result.polls, result.samples)
    # Each judged value is the one scraped at its stamp, never a later scrape's.
    judged = [e.sample for e in read_journal(path) if isinstance(e, GuardSampleEvent)]
    for sample in judged:
        assert sample.sample_time is not None
        assert sample.value == value_at(prom, guard.query, sample.sample_time), sample


def value_at(prom: PromStack, query: str, at: float) -> float:
    """The value of ``query`` evaluated at ``at`` (Prometheus' clock), straight over HTTP."""
    params = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{prom.url}/api/v1/query?{params}", timeout=5) as answer:
        result = json.load(answer)["data"]["result"]
    return float(result[0]["value"][1])
