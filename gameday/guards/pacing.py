"""When a guard polls next, and which of its samples are worth judging.

Prometheus scrapes each target on a fixed grid and stamps every raw sample with the time its
scrape began. A guard polled on a grid of its own sees a new sample up to one interval after
Prometheus had it; a guard polled just after the next scrape is due sees it within tens of
milliseconds. The guard's freshness query gives the newest input sample's timestamp, so the
next one is due one scrape interval later: the pacer polls then, and a poll that finds nothing
newer looks again shortly (the scrape was slow, or ingestion lagged).

Only samples newer than the last one judged are judged, so ``for`` counts scrapes, not polls.
Anything that means "we cannot see" — an error, no data, NaN, a stale or unstamped sample — is
judged at once, and the guard interval stays the longest gap between two polls, so blindness
is noticed as soon as it was before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gameday.guards.rules import Sample

#: Polls never come closer together than this, whatever the clocks say.
MIN_GAP = 0.01


@dataclass
class Pacer:
    """One guard's poll schedule, aligned to the scrapes of its inputs.

    ``interval`` is the guard interval (the longest gap between polls); ``scrape_interval`` the
    targets' scrape interval. ``settle`` is how long after a due scrape the first poll goes out
    (the scrape's own duration plus ingestion); ``retry`` how soon a poll that found nothing
    newer looks again.
    """

    interval: float
    scrape_interval: float
    settle: float = 0.03
    retry: float = 0.05
    #: Prometheus' clock minus ours, as an upper bound: the smallest ``query_time - asked``.
    _offset: float = field(default=math.inf, init=False)
    #: Newest input timestamp judged so far (Prometheus' clock).
    _judged: float = field(default=-math.inf, init=False)
    #: Newest input timestamp seen so far, judged or not.
    _seen: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.scrape_interval <= 0:
            raise ValueError("a pacer needs interval > 0 and scrape_interval > 0")
        self.retry = min(self.retry, self.scrape_interval / 10)

    def observe(self, sample: Sample, asked: float) -> None:
        """Learn from a sample answered to a poll sent at local time ``asked``."""
        if sample.error is not None or sample.sample_time is None:
            return  # an error's time is ours, and an unstamped sample says nothing of scrapes
        # The query was evaluated after it was sent, so this overestimates the offset by the
        # request's one-way latency: polls then go out a little early, never late.
        self._offset = min(self._offset, sample.query_time - asked)
        self._seen = max(self._seen, sample.sample_time)

    def worth_judging(self, sample: Sample, stale_after: float) -> bool:
        """Whether ``sample`` says something the last judged one did not."""
        if sample.error is not None or sample.value is None or math.isnan(sample.value):
            return True
        if sample.sample_time is None:
            return True  # no current input at all: stale, judge at once
        age = sample.age
        if age is not None and age > stale_after:
            return True
        return sample.sample_time > self._judged

    def judged(self, sample: Sample) -> None:
        """Remember the newest input timestamp judged."""
        if sample.sample_time is not None:
            self._judged = max(self._judged, sample.sample_time)

    def delay(self, now: float) -> float:
        """Seconds from local time ``now`` until the next poll."""
        if math.isinf(self._offset) or math.isinf(self._seen):
            return self.interval  # nothing to align to yet: the guard interval
        due = self._seen + self.scrape_interval + self.settle - self._offset
        wait = due - now
        if wait <= 0:
            late = -wait
            # A scrape a little late: look again soon. Far past due (a dead target, a stuck
            # Prometheus) there is no scrape to catch: fall back to the guard interval.
            wait = self.retry if late < self.scrape_interval else self.interval
        return min(max(wait, MIN_GAP), self.interval)
