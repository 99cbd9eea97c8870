"""The guard benchmark's onset placement and figures, with no stack."""

from __future__ import annotations

import random

import pytest

from benchmarks.guard_timing import first_run, onset_time, phase, ratio, spread, uniformity

LAST = 1_000_000.105  # a scrape timestamp, as Prometheus stamps them (milliseconds)


def test_onset_lands_offset_into_the_first_cycle_after_earliest() -> None:
    """The onset is the first cycle start at or after ``earliest``, plus the offset."""
    assert onset_time(LAST, 1.0, LAST + 1.3, 0.25) == pytest.approx(LAST + 2.25)
    assert onset_time(LAST, 1.0, LAST + 2.0, 0.0) == pytest.approx(LAST + 2.0)


def test_onset_never_lands_before_the_last_scrape() -> None:
    """An ``earliest`` already past (a slow query) still gives a point after the last scrape."""
    assert onset_time(LAST, 1.0, LAST - 5, 0.5) == pytest.approx(LAST + 0.5)


def test_onset_refuses_an_offset_outside_the_cycle() -> None:
    """An offset of a whole interval or more would bias the phase."""
    with pytest.raises(ValueError):
        onset_time(LAST, 1.0, LAST, 1.0)


def test_the_onset_phase_is_the_drawn_offset() -> None:
    """Measured against the same scrape grid, an onset's phase is its offset over the interval."""
    rng = random.Random(15)
    for _ in range(100):
        offset = rng.random() * 2.0
        at = onset_time(LAST, 2.0, LAST + rng.uniform(0, 10), offset)
        assert phase(at, LAST, 2.0) == pytest.approx(offset / 2.0, abs=1e-6)


def test_phase_wraps_into_the_cycle() -> None:
    """Times before the last scrape fold into ``[0, 1)`` as well."""
    assert phase(LAST - 0.25, LAST, 1.0) == pytest.approx(0.75)
    assert phase(LAST + 3.5, LAST, 1.0) == pytest.approx(0.5)


def test_uniformity_tells_spread_phases_from_bunched_ones() -> None:
    """Evenly spread phases are close to uniform; all just after a scrape are not."""
    spread_out = [(i + 0.5) / 20 for i in range(20)]
    assert uniformity(spread_out) == pytest.approx(0.025)
    assert uniformity([0.01 * i for i in range(20)]) > 0.7


def test_spread_gives_median_p90_and_max() -> None:
    """p90 interpolates between the order statistics, as the JSON line reports it."""
    figures = spread([float(v) for v in range(1, 21)])
    assert figures == {"median": 10.5, "p90": 18.1, "max": 20.0}


def test_spread_needs_two_values() -> None:
    """One trip has no spread."""
    with pytest.raises(ValueError):
        spread([1.0])


def test_ratio_against_a_missing_peer_is_none() -> None:
    """A peer figure of zero gives no ratio rather than a division error."""
    assert ratio(2.0, 2.5) == 0.8
    assert ratio(2.0, 0.0) is None


def test_first_run_skips_a_single_stray_request() -> None:
    """One slowed request is noise; three in a row make the onset."""
    slowed = [False, True, False, True, True, True, False]
    samples = [{"t": 10.0 + 0.05 * i} for i in range(len(slowed))]
    assert first_run(samples, slowed, True, after=0.0) == pytest.approx(10.15)
    assert first_run(samples, slowed, False, after=10.15) is None
