"""Guard verdicts from samples: pure decisions, no I/O.

A guard is *breached* when ``value op threshold`` held on every sample across its ``for``,
measured between the samples' own timestamps.
Guards fail closed: no data, a stale sample and a query error stop a run just as a breach
does, unless the guard says ``on_no_data: ignore``. Those three act at once, without ``for``:
waiting would turn "we cannot see" into "we keep injecting".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from gameday.models import Guard
from gameday.units import compare, format_duration

State = Literal["met", "breached", "no_data", "stale", "error"]
#: States that mean "we cannot see": breaches unless the guard ignores them.
BLIND: tuple[State, ...] = ("no_data", "stale", "error")
#: A sample is stale when its newest input is older than this many scrape intervals.
STALE_INTERVALS = 3.0


def stale_bound(scrape_interval: float, intervals: float = STALE_INTERVALS) -> float:
    """Age in seconds beyond which a sample counts as stale (default: 3 scrape intervals)."""
    return intervals * scrape_interval


@dataclass(frozen=True)
class Sample:
    """One evaluation of a guard's query: a value or an error, and when.

    ``query_time`` is when the query was evaluated and ``sample_time`` the timestamp of the
    newest raw sample the value was computed from, both in epoch seconds on Prometheus' clock
    (so their difference does not depend on our clock). A value without a ``sample_time``
    means its inputs have no current sample at all: it is stale.
    """

    query_time: float
    value: float | None = None
    sample_time: float | None = None
    error: str | None = None
    #: What a breach means in words, when the sampler knows better than "value op threshold"
    #: (the incident guard names the alerts).
    note: str | None = None

    def __post_init__(self) -> None:
        if self.error is not None and self.value is not None:
            raise ValueError("a sample has a value or an error, not both")

    @property
    def age(self) -> float | None:
        """Seconds between the newest input sample and the evaluation, if known."""
        return None if self.sample_time is None else self.query_time - self.sample_time


@dataclass(frozen=True)
class Verdict:
    """What a guard says after its latest sample."""

    guard: str
    state: State
    value: float | None
    op: str
    threshold: float
    for_: float
    #: Query time of the first sample of the current streak (for ``met`` while ``pending``:
    #: when the condition started to hold).
    since: float
    #: Query time of the sample judged.
    at: float
    summary: str
    #: Whether no data, stale data and errors stop the run (``on_no_data: breach``).
    fail_closed: bool = True
    #: The condition holds but not yet for ``for``.
    pending: bool = False

    @property
    def clear(self) -> bool:
        """Met with the condition not holding at all (not even pending)."""
        return self.state == "met" and not self.pending

    @property
    def stops(self) -> bool:
        """Whether this verdict ends the hold: a breach, or blindness under fail-closed."""
        return self.state == "breached" or (self.state in BLIND and self.fail_closed)


# Per-sample classification: "condition" is a sample on which ``value op threshold`` holds.
_Seen = Literal["met", "condition", "no_data", "stale", "error"]


def _seen(guard: Guard, sample: Sample, stale_after: float) -> _Seen:
    if sample.error is not None:
        return "error"
    if sample.value is None or math.isnan(sample.value):
        # NaN compares false with everything, so it would pass as "met": count it as no data.
        return "no_data"
    age = sample.age
    if age is None or age > stale_after:
        return "stale"
    return "condition" if compare(sample.value, guard.op, guard.threshold) else "met"


def judge(name: str, guard: Guard, samples: Sequence[Sample], *, stale_after: float,
          tolerance: float = 0.0) -> Verdict:
    """The verdict after the last of ``samples`` (oldest first, one per evaluation; not empty).

    ``stale_after`` is the largest allowed sample age in seconds (see :func:`stale_bound`).
    ``tolerance`` forgives that much of ``for`` so that evaluations a few milliseconds early
    do not cost a whole extra interval; keep it well under half the evaluation interval.
    """
    if not samples:
        raise ValueError("judge needs at least one sample")
    last = samples[-1]
    seen = [_seen(guard, s, stale_after) for s in samples]
    start = len(seen) - 1
    while start > 0 and seen[start - 1] == seen[-1]:
        start -= 1
    since = samples[start].query_time

    def verdict(state: State, value: float | None, summary: str, pending: bool = False
                ) -> Verdict:
        return Verdict(guard=name, state=state, value=value, op=guard.op,
                       threshold=guard.threshold, for_=guard.for_, since=since,
                       at=last.query_time, summary=f"{name} {summary}",
                       fail_closed=guard.on_no_data == "breach", pending=pending)

    rule = _rule_text(guard)
    ignored = "" if guard.on_no_data == "breach" else " (ignored: on_no_data is ignore)"
    match seen[-1]:
        case "condition":
            # Counted on the samples' own timestamps: two answers computed from one scrape are
            # one observation, however far apart they were asked.
            held = _stamp(last) - _stamp(samples[start])
            shown = f"{_num(last.value)} {guard.op} {guard.threshold:g}"
            if held + tolerance >= guard.for_:
                if last.note:
                    return verdict("breached", last.value, f"breached: {last.note}")
                kept = f" for {held:.1f}s" if guard.for_ else ""
                return verdict("breached", last.value, f"breached: {shown}{kept} ({rule})")
            return verdict("met", last.value, f"pending: {shown} for {held:.1f}s of "
                           f"{format_duration(guard.for_)}", pending=True)
        case "met":
            return verdict("met", last.value, f"met: {_num(last.value)} ({rule})")
        case "no_data":
            why = "the query returned nothing" if last.value is None else "the query gave NaN"
            return verdict("no_data", None, f"no data: {why}{ignored}")
        case "stale":
            age = last.age
            how_old = ("its inputs have no current sample" if age is None
                       else f"newest input sample is {age:.1f}s old")
            return verdict("stale", last.value, f"stale: {how_old} (bound {stale_after:g}s)"
                           f"{ignored}")
    return verdict("error", None, f"error: {last.error}{ignored}")


def _stamp(sample: Sample) -> float:
    """When a sample's inputs were scraped; its query time when that is unknown."""
    return sample.query_time if sample.sample_time is None else sample.sample_time


def worst(values: Iterable[float], op: str, threshold: float) -> float | None:
    """The one value a guard judges when its query returns several series.

    Fail closed: the value closest to breaching wins (the largest for ``>``/``>=``, the
    smallest for ``<``/``<=``, a matching one for ``==``/``!=``). NaNs are dropped; ``None``
    when nothing is left.
    """
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return None
    if op in (">", ">="):
        return max(kept)
    if op in ("<", "<="):
        return min(kept)
    return next((v for v in kept if compare(v, op, threshold)), kept[0])


def _rule_text(guard: Guard) -> str:
    held = f" for {format_duration(guard.for_)}" if guard.for_ else ""
    return f"breach when {guard.op} {guard.threshold:g}{held}"


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"
