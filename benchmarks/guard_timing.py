"""Pure parts of the guard benchmark: where an onset goes in the scrape cycle, and the figures.

A guard can only see a fault once the target's next scrape carries it, so the time to detect
depends on where in the scrape cycle the fault begins. An honest benchmark draws that point
uniformly over one cycle, on Prometheus' own scrape timestamps, for every trip of every tool.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

#: Consecutive requests that make an onset (slowed) or a clean (normal): one stray request
#: under a busy CPU does not count.
RUN_LENGTH = 3


def onset_time(last_scrape: float, interval: float, earliest: float, offset: float) -> float:
    """The first scrape-cycle start at or after ``earliest``, plus ``offset`` into the cycle.

    Cycles start at ``last_scrape + k * interval``; ``offset`` is drawn from
    ``[0, interval)`` by the caller, so the result lies at a uniform point of a cycle.
    """
    if interval <= 0 or not 0 <= offset < interval:
        raise ValueError("onset_time needs interval > 0 and 0 <= offset < interval")
    cycles = max(0, math.ceil((earliest - last_scrape) / interval))
    return last_scrape + cycles * interval + offset


def phase(at: float, last_scrape: float, interval: float) -> float:
    """Where ``at`` falls in the scrape cycle, as a fraction in ``[0, 1)``."""
    return ((at - last_scrape) / interval) % 1.0


def uniformity(phases: Sequence[float]) -> float:
    """Kolmogorov-Smirnov distance between ``phases`` (in ``[0, 1)``) and the uniform law.

    Near 0 for well-spread phases; with 20 trips, above about 0.29 means they are not uniform
    (5 % level), e.g. every onset placed just after a scrape.
    """
    ordered = sorted(phases)
    n = len(ordered)
    if n == 0:
        raise ValueError("uniformity needs at least one phase")
    return max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(ordered))


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, 90th percentile (interpolated) and max, rounded to milliseconds."""
    if len(values) < 2:
        raise ValueError("spread needs at least two values")
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1]
    return {"median": round(statistics.median(values), 3), "p90": round(p90, 3),
            "max": round(max(values), 3)}


def ratio(ours: float, theirs: float) -> float | None:
    """``ours / theirs`` rounded to three digits; None when the peer's figure is not positive."""
    return round(ours / theirs, 3) if theirs > 0 else None


def first_run(samples: Sequence[dict[str, Any]], slowed: Sequence[bool], want: bool,
              after: float) -> float | None:
    """Start of the first request at or after ``after`` that begins ``RUN_LENGTH`` in a row
    whose ``slowed`` is ``want`` (samples ordered by start time ``t``)."""
    for index in range(len(samples) - RUN_LENGTH + 1):
        if samples[index]["t"] < after:
            continue
        if all(slowed[index + k] == want for k in range(RUN_LENGTH)):
            return float(samples[index]["t"])
    return None
