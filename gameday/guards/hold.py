"""Hold a step for its dwell while every guard is evaluated, all in parallel.

One task per guard. Given the targets' scrape interval, each guard polls just after its next
input sample is due and judges only samples newer than the last (``pacing``), so a breach is
seen as soon as Prometheus has it and ``for`` counts scrapes. Without it, guards poll on a
shared grid (``start + k * interval``) and judge every answer. Either way the guard interval is
the longest gap between polls. The first verdict that stops the run resolves a future the hold
waits on, and the hold then cancels every pending query and sleep at once. Nothing retries a
failed query: it is an ``error`` sample, and under fail-closed an error stops the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gameday.guards.pacing import Pacer
from gameday.guards.queries import GuardQuery
from gameday.guards.rules import Sample, Verdict, judge

#: Called with every sample and its verdict, on the event loop; keep it quick (a journal line).
Recorder = Callable[[GuardQuery, Sample, Verdict], None]


class Sampler(Protocol):
    """Takes one sample of a guard's query (``Prometheus`` is one)."""

    async def sample(self, guard: GuardQuery) -> Sample:
        """One sample; failures are returned as ``error`` samples, not raised."""
        ...


@dataclass(frozen=True)
class HoldResult:
    """How a hold ended: the whole dwell held, or which guard stopped it and when."""

    started: float
    ended: float
    dwell: float
    interval: float
    #: Name of the guard whose verdict stopped the hold; None when the dwell held.
    guard: str | None = None
    verdict: Verdict | None = None
    #: Epoch seconds at which the stopping verdict was reached.
    breached_at: float | None = None
    #: Samples judged across all guards.
    samples: int = 0
    #: Polls sent across all guards (each is the guard's query and its freshness query).
    polls: int = 0

    @property
    def held(self) -> bool:
        """Whether the step held for its whole dwell."""
        return self.guard is None

    @property
    def summary(self) -> str:
        """One line for people."""
        took = self.ended - self.started
        if self.verdict is None:
            return f"held {took:.1f}s of {self.dwell:g}s, {self.samples} samples"
        return f"stopped after {took:.1f}s of {self.dwell:g}s: {self.verdict.summary}"


@dataclass
class _Count:
    judged: int = 0
    polls: int = 0


@dataclass(frozen=True)
class _Stop:
    guard: GuardQuery
    verdict: Verdict
    at: float


async def hold(dwell: float, guards: Sequence[GuardQuery], interval: float, *,
               sampler: Sampler, stale_after: float, record: Recorder | None = None,
               scrape_interval: float | None = None) -> HoldResult:
    """Hold for ``dwell`` seconds unless a guard stops it; poll each guard at least every
    ``interval``.

    ``stale_after`` is the largest allowed sample age (see ``rules.stale_bound``).
    ``scrape_interval`` aligns each guard's polls to its inputs' scrapes; without it guards
    poll on the ``interval`` grid. ``record`` sees every judged sample and its verdict. If
    ``record`` raises, the hold ends with that exception: a run that cannot keep its journal
    must not go on.
    """
    if dwell < 0 or interval <= 0:
        raise ValueError("hold needs dwell >= 0 and interval > 0")
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[_Stop] = loop.create_future()
    count = _Count()
    started, origin = time.time(), loop.time()
    tasks = [asyncio.create_task(_watch(g, _Schedule(origin, interval, scrape_interval), sampler,
                                        stale_after, record, stop, count), name=f"guard {g.name}")
             for g in guards]
    try:
        try:
            async with asyncio.timeout(dwell):
                # shield: the dwell's end must not cancel what the guard tasks resolve.
                found = await asyncio.shield(stop)
        except TimeoutError:
            return HoldResult(started=started, ended=time.time(), dwell=dwell,
                              interval=interval, samples=count.judged, polls=count.polls)
        return HoldResult(started=started, ended=time.time(), dwell=dwell, interval=interval,
                          guard=found.guard.name, verdict=found.verdict, breached_at=found.at,
                          samples=count.judged, polls=count.polls)
    finally:
        # Done before cancelling: a guard task that misses its cancellation still sees it.
        if not stop.done():
            stop.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True)
class _Schedule:
    origin: float
    interval: float
    scrape_interval: float | None


async def _watch(guard: GuardQuery, schedule: _Schedule, sampler: Sampler, stale_after: float,
                 record: Recorder | None, stop: asyncio.Future[_Stop], count: _Count) -> None:
    """Poll one guard until it stops the run or is cancelled."""
    loop = asyncio.get_running_loop()
    interval = schedule.interval
    pacer = (None if schedule.scrape_interval is None
             else Pacer(interval, schedule.scrape_interval))
    history: list[Sample] = []
    # Samples a little early must not cost a whole extra scrape of ``for``.
    tolerance = (schedule.scrape_interval or interval) / 4
    keep = guard.guard.for_ + 2 * max(interval, schedule.scrape_interval or 0.0)
    try:
        while not stop.done():
            asked = time.time()
            try:
                sample = await sampler.sample(guard)
            except Exception as exc:  # a broken sampler is blindness: fail closed
                sample = Sample(query_time=time.time(), error=f"{type(exc).__name__}: {exc}")
            if stop.done():
                return  # the hold is over; a late answer changes nothing
            count.polls += 1
            if pacer is not None:
                pacer.observe(sample, asked)
            if pacer is None or pacer.worth_judging(sample, stale_after):
                if pacer is not None:
                    pacer.judged(sample)
                verdict = _judge(guard, history, sample, keep, stale_after, tolerance)
                count.judged += 1
                if record is not None:
                    record(guard, sample, verdict)
                if verdict.stops:
                    if not stop.done():
                        stop.set_result(_Stop(guard, verdict, time.time()))
                    return
            if pacer is not None:
                await asyncio.sleep(pacer.delay(time.time()))
            else:
                elapsed = loop.time() - schedule.origin
                await asyncio.sleep((int(elapsed / interval) + 1) * interval - elapsed)
    except Exception as exc:  # the recorder failed: end the hold with its exception
        if not stop.done():
            stop.set_exception(exc)
        raise


def _judge(guard: GuardQuery, history: list[Sample], sample: Sample, keep: float,
           stale_after: float, tolerance: float) -> Verdict:
    """Add ``sample`` to ``history`` (only the span ``for`` looks at, plus margin) and judge."""
    history.append(sample)
    while len(history) > 2 and history[1].query_time < sample.query_time - keep:
        history.pop(0)
    return judge(guard.name, guard.guard, history, stale_after=stale_after, tolerance=tolerance)
